"""Backend claude-code: the real Claude Code CLI runs the skill, driven by our scripted model on loopback."""
