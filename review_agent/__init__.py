"""review-agent: a fault-tolerant AI code-review agent."""

__version__ = "0.1.0"
