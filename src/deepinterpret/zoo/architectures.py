"""The zoo's network definitions. Framework code, imported only when a model of that framework is built."""

from __future__ import annotations

from typing import Any

DIGITS_CLASSES = tuple(str(d) for d in range(10))


def digits_cnn_torch() -> Any:
    """Three conv blocks, global average pooling and a linear head (so CAM applies). Input 1x32x32."""
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return DigitsCNN()


def digits_cnn_paddle() -> Any:
    """The same network in PaddlePaddle, with the same layer names."""
    import paddle
    from paddle import nn

    class DigitsCNN(nn.Layer):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2D(1, 16, 3, padding=1),
                nn.BatchNorm2D(16),
                nn.ReLU(),
                nn.MaxPool2D(2),
                nn.Conv2D(16, 32, 3, padding=1),
                nn.BatchNorm2D(32),
                nn.ReLU(),
                nn.MaxPool2D(2),
                nn.Conv2D(32, 64, 3, padding=1),
                nn.BatchNorm2D(64),
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.classifier = nn.Linear(64, 10)

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            return self.classifier(paddle.flatten(self.pool(self.features(x)), 1))

    return DigitsCNN()


def digits_vit_config() -> Any:
    from transformers import ViTConfig

    return ViTConfig(
        image_size=32,
        patch_size=4,
        num_channels=1,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.0,
        num_labels=10,
        id2label={i: c for i, c in enumerate(DIGITS_CLASSES)},
        label2id={c: i for i, c in enumerate(DIGITS_CLASSES)},
    )


def digits_vit_torch() -> Any:
    """A small Vision Transformer (Hugging Face ``ViTForImageClassification``): 8x8 patches of 4x4 pixels."""
    from transformers import ViTForImageClassification

    return ViTForImageClassification(digits_vit_config())
