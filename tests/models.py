"""Small models for the tests: one CNN defined in PyTorch and in Paddle (weights copied across), and
configurable Hugging Face / paddle.vision networks built without any download."""

from __future__ import annotations

import numpy as np


def torch_cnn(seed: int = 0, num_classes: int = 10, channels: int = 3):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(16, num_classes),
    )
    # Non-trivial BatchNorm statistics, so that eval mode matters.
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


def paddle_cnn(num_classes: int = 10, channels: int = 3):
    from paddle import nn

    return nn.Sequential(
        nn.Conv2D(channels, 8, 3, padding=1),
        nn.BatchNorm2D(8),
        nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Conv2D(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2D(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(16, num_classes),
    )


def cnn_pair(seed: int = 0):
    """The same small CNN in PyTorch and Paddle, with identical weights."""
    from deepinterpret.adapters.convert import torch_to_paddle

    t = torch_cnn(seed)
    p = torch_to_paddle(t, paddle_cnn())
    p.eval()
    return t, p


def hf_resnet(seed: int = 0, num_labels: int = 10):
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(
        num_channels=3,
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        layer_type="basic",
        num_labels=num_labels,
    )
    return ResNetForImageClassification(config).eval()


def paddle_resnet18(seed: int = 0, num_classes: int = 10):
    import paddle
    from paddle.vision.models import resnet18

    paddle.seed(seed)
    return resnet18(pretrained=False, num_classes=num_classes)


def images(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    """Model-ready float32 NCHW inputs."""
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)
