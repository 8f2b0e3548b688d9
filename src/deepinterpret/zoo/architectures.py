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


# -- EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile accelerators) --------------------------------
# 16 MBConv blocks without squeeze-excitation, ReLU6 instead of swish, BatchNorm eps 1e-3, stem and head fixed at
# 32 and 1280 channels. The layer names are those of the common PyTorch port (``_conv_stem``, ``_bn0``,
# ``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` / ``_bn2``,
# ``_conv_head``, ``_bn1``, ``_fc``), so its state dict loads as it is. Convolutions pad as TensorFlow's "SAME"
# (at stride 2 the extra row and column go to the bottom and right), as the weights were trained. Each ReLU6 is a
# module of its own (``_act0``, ``_act1`` in a block; ``_stem_act``, ``_head_act``) defined right after its
# BatchNorm, so hooks (CAM, LRP) can reach it; ``_head_act`` is the last feature map (1280 x 7 x 7 at 224 px).

# (repeats, kernel, stride, expansion, input channels, output channels) of each stage
EFFICIENTNET_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _lite0_blocks() -> list[tuple[int, int, int, int, int]]:
    """``(input channels, output channels, kernel, stride, expansion)`` of the 16 blocks."""
    blocks = []
    for repeats, kernel, stride, expansion, cin, cout in EFFICIENTNET_LITE0_STAGES:
        for index in range(repeats):
            blocks.append((cin if index == 0 else cout, cout, kernel, stride if index == 0 else 1, expansion))
    return blocks


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one spatial axis: ``(before, after)``, the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def efficientnet_lite0_torch(num_classes: int = 1000, dropout: float = 0.2) -> Any:
    """EfficientNet-Lite0 in PyTorch (4.65 M parameters at 1000 classes). Input 3 x 224 x 224, normalised with
    mean 127/255 and std 128/255 per channel for the ImageNet weights."""
    import torch
    from torch import nn

    functional = nn.functional

    class Conv2dSame(nn.Conv2d):
        """A ``Conv2d`` (no bias) padding like TensorFlow's "SAME"; LRP's re-run of the layer pads the same way."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
            super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

        def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = functional.pad(x, (left, right, top, bottom))
            return functional.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def batchnorm(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)

    class MBConvBlock(nn.Module):
        """Inverted residual: 1x1 expansion, depthwise k x k, 1x1 linear projection; identity skip when shapes agree."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
            super().__init__()
            mid = cin * expansion
            self.expand = expansion != 1
            if self.expand:
                self._expand_conv = Conv2dSame(cin, mid, 1)
                self._bn0 = batchnorm(mid)
                self._act0 = nn.ReLU6()
            self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
            self._bn1 = batchnorm(mid)
            self._act1 = nn.ReLU6()
            self._project_conv = Conv2dSame(mid, cout, 1)
            self._bn2 = batchnorm(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
            y = self._bn2(self._project_conv(self._act1(self._bn1(self._depthwise_conv(y)))))
            return x + y if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = Conv2dSame(3, 32, 3, 2)
            self._bn0 = batchnorm(32)
            self._stem_act = nn.ReLU6()
            self._blocks = nn.ModuleList(MBConvBlock(*spec) for spec in _lite0_blocks())
            self._conv_head = Conv2dSame(320, 1280, 1)
            self._bn1 = batchnorm(1280)
            self._head_act = nn.ReLU6()
            self._avg_pooling = nn.AdaptiveAvgPool2d(1)
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(1280, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self._stem_act(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = self._head_act(self._bn1(self._conv_head(x)))
            return self._fc(self._dropout(torch.flatten(self._avg_pooling(x), 1)))

    return EfficientNetLite0()


def efficientnet_lite0_paddle(num_classes: int = 1000, dropout: float = 0.2) -> Any:
    """The same network in PaddlePaddle, with the same layer names (Paddle's ``padding="SAME"`` is TensorFlow's)."""
    import paddle
    from paddle import nn

    def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Layer:
        return nn.Conv2D(cin, cout, kernel, stride, padding="SAME", groups=groups, bias_attr=False)

    def batchnorm(channels: int) -> nn.Layer:
        return nn.BatchNorm2D(channels, momentum=0.99, epsilon=1e-3)

    class MBConvBlock(nn.Layer):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
            super().__init__()
            mid = cin * expansion
            self.expand = expansion != 1
            if self.expand:
                self._expand_conv = conv(cin, mid, 1)
                self._bn0 = batchnorm(mid)
                self._act0 = nn.ReLU6()
            self._depthwise_conv = conv(mid, mid, kernel, stride, groups=mid)
            self._bn1 = batchnorm(mid)
            self._act1 = nn.ReLU6()
            self._project_conv = conv(mid, cout, 1)
            self._bn2 = batchnorm(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            y = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
            y = self._bn2(self._project_conv(self._act1(self._bn1(self._depthwise_conv(y)))))
            return x + y if self.skip else y

    class EfficientNetLite0(nn.Layer):
        def __init__(self):
            super().__init__()
            self._conv_stem = conv(3, 32, 3, 2)
            self._bn0 = batchnorm(32)
            self._stem_act = nn.ReLU6()
            self._blocks = nn.LayerList([MBConvBlock(*spec) for spec in _lite0_blocks()])
            self._conv_head = conv(320, 1280, 1)
            self._bn1 = batchnorm(1280)
            self._head_act = nn.ReLU6()
            self._avg_pooling = nn.AdaptiveAvgPool2D(1)
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(1280, num_classes)

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            x = self._stem_act(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = self._head_act(self._bn1(self._conv_head(x)))
            return self._fc(self._dropout(paddle.flatten(self._avg_pooling(x), 1)))

    return EfficientNetLite0()
