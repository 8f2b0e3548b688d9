"""The zoo's network definitions. Framework code, imported only when a model of that framework is built."""

from __future__ import annotations

from typing import Any

from .efficientnet import (
    EFFICIENTNET_LITE0_STAGES,
    _lite0_blocks,
    efficientnet_lite0_paddle,
    efficientnet_lite0_torch,
    same_padding,
)  # re-exported: EfficientNet-Lite0 lives in efficientnet.py

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


# -- Vision Transformers with the timm / PaddleClas layer names -----------------------------------------------
# ``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.N.norm1``, ``blocks.N.attn.qkv``,
# ``blocks.N.attn.attn_drop`` (its output is the attention probabilities), ``blocks.N.attn.proj``, ``norm2``,
# ``mlp.fc1``/``fc2``, ``norm``, ``head``: the names InterpretDL's default layer patterns are written for. The two
# definitions compute the same function, so weights copied across give the same numbers.


def vision_transformer_torch(
    image_size: int = 224,
    patch_size: int = 16,
    in_channels: int = 3,
    num_classes: int = 1000,
    embed_dim: int = 384,
    depth: int = 12,
    num_heads: int = 6,
    mlp_ratio: float = 4.0,
    epsilon: float = 1e-6,
) -> Any:
    """A ViT in PyTorch with the timm / PaddleClas layer names (ViT-Small/16 by default)."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = num_heads
            self.scale = (embed_dim // num_heads) ** -0.5
            self.qkv = nn.Linear(embed_dim, embed_dim * 3)
            self.attn_drop = nn.Dropout(0.0)
            self.proj = nn.Linear(embed_dim, embed_dim)
            self.proj_drop = nn.Dropout(0.0)

        def forward(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
            attn = torch.softmax((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale, dim=-1)
            attn = self.attn_drop(attn)
            return self.proj_drop(self.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c)))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(embed_dim, int(embed_dim * mlp_ratio))
            self.act = nn.GELU()
            self.fc2 = nn.Linear(int(embed_dim * mlp_ratio), embed_dim)
            self.drop = nn.Dropout(0.0)

        def forward(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(embed_dim, eps=epsilon)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(embed_dim, eps=epsilon)
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.global_pool = "token"
            self.patch_embed = PatchEmbed()
            self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
            self.pos_embed = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, embed_dim) * 0.02)
            self.pos_drop = nn.Dropout(0.0)
            self.blocks = nn.ModuleList(Block() for _ in range(depth))
            self.norm = nn.LayerNorm(embed_dim, eps=epsilon)
            self.head = nn.Linear(embed_dim, num_classes)

        def forward(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            x = self.pos_drop(x + self.pos_embed)
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x)[:, 0])

    return VisionTransformer()


def vision_transformer_paddle(
    image_size: int = 224,
    patch_size: int = 16,
    in_channels: int = 3,
    num_classes: int = 1000,
    embed_dim: int = 384,
    depth: int = 12,
    num_heads: int = 6,
    mlp_ratio: float = 4.0,
    epsilon: float = 1e-6,
) -> Any:
    """The same ViT in PaddlePaddle, laid out as PaddleClas's ``VisionTransformer`` (ViT-Small/16 by default)."""
    import paddle
    from paddle import nn

    class Attention(nn.Layer):
        def __init__(self):
            super().__init__()
            self.num_heads = num_heads
            self.scale = (embed_dim // num_heads) ** -0.5
            self.qkv = nn.Linear(embed_dim, embed_dim * 3)
            self.attn_drop = nn.Dropout(0.0)
            self.proj = nn.Linear(embed_dim, embed_dim)
            self.proj_drop = nn.Dropout(0.0)

        def forward(self, x):
            n, c = x.shape[1], x.shape[2]
            qkv = self.qkv(x).reshape((-1, n, 3, self.num_heads, c // self.num_heads)).transpose((2, 0, 3, 1, 4))
            attn = nn.functional.softmax(qkv[0].matmul(qkv[1].transpose((0, 1, 3, 2))) * self.scale, axis=-1)
            attn = self.attn_drop(attn)
            return self.proj_drop(self.proj(attn.matmul(qkv[2]).transpose((0, 2, 1, 3)).reshape((-1, n, c))))

    class Mlp(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(embed_dim, int(embed_dim * mlp_ratio))
            self.act = nn.GELU()
            self.fc2 = nn.Linear(int(embed_dim * mlp_ratio), embed_dim)
            self.drop = nn.Dropout(0.0)

        def forward(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    class Block(nn.Layer):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(embed_dim, epsilon=epsilon)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(embed_dim, epsilon=epsilon)
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class PatchEmbed(nn.Layer):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2D(in_channels, embed_dim, patch_size, stride=patch_size)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose((0, 2, 1))

    class VisionTransformer(nn.Layer):
        def __init__(self):
            super().__init__()
            self.global_pool = "token"
            self.patch_embed = PatchEmbed()
            normal = nn.initializer.TruncatedNormal(std=0.02)
            self.cls_token = self.create_parameter((1, 1, embed_dim), default_initializer=normal)
            self.pos_embed = self.create_parameter(
                (1, (image_size // patch_size) ** 2 + 1, embed_dim), default_initializer=normal
            )
            self.pos_drop = nn.Dropout(0.0)
            self.blocks = nn.LayerList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
            self.head = nn.Linear(embed_dim, num_classes)

        def forward(self, x):
            x = self.patch_embed(x)
            x = paddle.concat([self.cls_token.expand((x.shape[0], -1, -1)), x], axis=1)
            x = self.pos_drop(x + self.pos_embed)
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x)[:, 0])

    return VisionTransformer()


def mlp_torch(inputs: int, classes: int, hidden: int = 128) -> Any:
    """Two-layer perceptron (Linear, ReLU, Linear) in PyTorch: the classifier of the label-noise experiments."""
    from torch import nn

    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def mlp_paddle(inputs: int, classes: int, hidden: int = 128) -> Any:
    """The same perceptron in PaddlePaddle."""
    from paddle import nn

    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))


__all__ = [
    "DIGITS_CLASSES",
    "EFFICIENTNET_LITE0_STAGES",
    "digits_cnn_paddle",
    "digits_cnn_torch",
    "digits_vit_config",
    "digits_vit_torch",
    "efficientnet_lite0_paddle",
    "efficientnet_lite0_torch",
    "mlp_paddle",
    "mlp_torch",
    "same_padding",
    "vision_transformer_paddle",
    "vision_transformer_torch",
    "_lite0_blocks",
]
