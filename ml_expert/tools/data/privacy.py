"""The one rule that keeps training rows out of artifacts, shared by the encoder and drift stats."""

# A category needs this many training rows to be stored anywhere (its own one-hot column, a drift
# share): a value seen once is one training row's value and must never appear in an artifact.
MIN_CATEGORY_COUNT = 5
