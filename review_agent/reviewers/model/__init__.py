"""The language-model reviewer (the Reviewer port on any OpenAI-compatible server).

``prompts`` says what the model is told, ``answer`` reads what it says, ``errors`` maps a
server's refusals to the run's exit codes, and ``reviewer`` runs the exchange.
"""

from review_agent.reviewers.model.answer import sanitize_markdown, withhold_instructions
from review_agent.reviewers.model.prompts import PROMPT_VERSION, SYSTEM_PROMPT, build_messages
from review_agent.reviewers.model.reviewer import ModelReviewer

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "ModelReviewer",
    "build_messages",
    "sanitize_markdown",
    "withhold_instructions",
]
