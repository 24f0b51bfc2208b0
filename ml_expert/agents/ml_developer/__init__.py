"""The ml-developer: prepares the data, trains the neural model, exports and packages.

One module per phase (preparation, training, deployment), the network's training apart from the
choice it feeds, and what they share in common.py. The graph imports the three nodes from here.
"""

from ml_expert.agents.ml_developer.deployment import deployment
from ml_expert.agents.ml_developer.preparation import data_preparation
from ml_expert.agents.ml_developer.training import training

__all__ = ["data_preparation", "deployment", "training"]
