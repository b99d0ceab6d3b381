"""The one GitHub client of review-agent: who we are (a token, or a GitHub App installation), how
we retry (reads only, waits bounded), how GitHub's failures and rate limits become the project's
errors, and the pull request handle that the source, the publisher and the feedback reader share.
"""

from review_agent.github.auth import (
    AppCredentials,
    GitHubCredentials,
    InstallationCredentials,
    TokenCredentials,
    app_credentials,
    app_credentials_from_env,
    installation_id_for,
)
from review_agent.github.client import PullRequestHandle
from review_agent.github.refs import PullRequestRef, parse_pr_url

__all__ = [
    "AppCredentials",
    "GitHubCredentials",
    "InstallationCredentials",
    "PullRequestHandle",
    "PullRequestRef",
    "TokenCredentials",
    "app_credentials",
    "app_credentials_from_env",
    "installation_id_for",
    "parse_pr_url",
]
