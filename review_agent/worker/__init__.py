"""The GitHub App's workers: procrastinate tasks that run the same review service as the CLI.

``queue`` (the procrastinate App and the job's shape) and ``schema`` (``db init``) are light and
shared with the webhook server; ``tasks`` and ``runner`` import the review service and are only
loaded by ``review-agent worker``.
"""
