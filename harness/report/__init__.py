"""Reports people read: the self-contained HTML page (`python -m harness report`) and the
leaderboard refresh that follows an evaluation."""
