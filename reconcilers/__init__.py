"""The dataset contract and the comparison engine."""
