"""The language-model reviewer (the Reviewer port on any OpenAI-compatible server).

``prompts`` says what the model is told (with ``pr_section``, ``excerpt`` and ``tokens`` for the
pull request's context, the file around the change and the budget), ``answer`` reads what it
says, ``errors`` maps a server's refusals to the run's exit codes, and ``reviewer`` runs the
exchange.
"""

from review_agent.reviewers.model.answer import clean_answer_text, withhold_instructions
from review_agent.reviewers.model.prompts import (
    DEFAULT_BUDGET,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    Prompt,
    PromptBudget,
    build_messages,
    build_prompt,
)
from review_agent.reviewers.model.reviewer import ModelReviewer

__all__ = [
    "DEFAULT_BUDGET",
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "ModelReviewer",
    "Prompt",
    "PromptBudget",
    "build_messages",
    "build_prompt",
    "clean_answer_text",
    "withhold_instructions",
]
