"""Where results go: reports in several formats, and (later) the GitHub review."""
