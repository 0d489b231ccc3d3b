"""Looking at a trained model: the pictures ``mnist-evaluate`` and the notebook draw."""
