"""The learning core: pure functions and small classes over plain data (numpy and vowpalwabbit only)."""
