"""EfficientNet-Lite0, the zoo's ImageNet model (PyTorch and Paddle). Framework code, imported only when a model of
that framework is built."""

from __future__ import annotations

from typing import Any

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
