"""The three layers of agent state (DESIGN.md §3). Imports nothing of the project."""
