"""Where a review's files come from: a GitHub pull request or a local git repository."""
