"""The three layers of agent state (docs/architecture.md, "State"). Imports nothing of the project."""
