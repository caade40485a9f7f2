"""Abadi et al. 2016 / TF-Privacy MNIST: published DP-SGD epsilons, reproduced."""
