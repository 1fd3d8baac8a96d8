"""The memory-lean conditional depthwise convolution: correctness, gradients, dtypes, memory."""
import pytest
import torch
import torch.nn.functional as F

from methods.ccfpse.conditional_conv import (ConditionalDepthwiseConv, conditional_depthwise_conv3x3,
                                             conditional_depthwise_conv3x3_unfold)


def _inputs(n=2, c=3, h=5, w=7, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype).requires_grad_()
    k = torch.randn(n, c * 9, h, w, generator=g, dtype=dtype).requires_grad_()
    return x, k


def test_gradcheck_float64():
    x, k = _inputs()
    assert torch.autograd.gradcheck(conditional_depthwise_conv3x3, (x, k))
    # one input at a time (the other constant), as when a head is frozen
    assert torch.autograd.gradcheck(lambda x: conditional_depthwise_conv3x3(x, k.detach()), (x,))
    assert torch.autograd.gradcheck(lambda k: conditional_depthwise_conv3x3(x.detach(), k), (k,))


@pytest.mark.parametrize("shape", [(1, 4, 8, 8), (2, 5, 6, 11), (3, 2, 1, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_unfold_formulation_forward_and_gradients(shape, channels_last):
    x, k = _inputs(*shape, dtype=torch.float32, seed=sum(shape))
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        k = k.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    lean = conditional_depthwise_conv3x3(x, k)
    ref = conditional_depthwise_conv3x3_unfold(x, k)
    torch.testing.assert_close(lean, ref, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(ref)
    g_lean = torch.autograd.grad(lean, (x, k), grad_out)
    g_ref = torch.autograd.grad(ref, (x, k), grad_out)
    for a, b in zip(g_lean, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_spatially_constant_kernels_equal_a_grouped_convolution():
    """Independent check: the same kernel at every pixel is an ordinary depthwise conv2d."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    kernels = weight.reshape(1, 4 * 9, 1, 1).expand(2, 4 * 9, 9, 6)
    expected = F.conv2d(x, weight, padding=1, groups=4)
    torch.testing.assert_close(conditional_depthwise_conv3x3(x, kernels), expected)


def test_kernel_layout_is_channel_major_and_row_major_taps():
    """Kernel channel c*9 + 3*i + j weighs the input pixel at offset (i-1, j-1), zero outside."""
    x = torch.arange(2 * 4 * 5, dtype=torch.float64).view(1, 2, 4, 5)
    padded = F.pad(x, (1, 1, 1, 1))
    for c in range(2):
        for i in range(3):
            for j in range(3):
                kernels = torch.zeros(1, 18, 4, 5, dtype=torch.float64)
                kernels[:, c * 9 + 3 * i + j] = 1.0
                out = conditional_depthwise_conv3x3(x, kernels)
                expected = torch.zeros_like(x)
                expected[:, c] = padded[:, c, i:i + 4, j:j + 5]
                torch.testing.assert_close(out, expected)


def test_bfloat16_accumulates_in_float32_and_keeps_input_dtypes():
    x, k = _inputs(1, 6, 10, 12, dtype=torch.float32, seed=5)
    ref = conditional_depthwise_conv3x3_unfold(x.double(), k.double())
    xb = x.detach().bfloat16().requires_grad_()
    kb = k.detach().bfloat16().requires_grad_()
    out = conditional_depthwise_conv3x3(xb, kb)
    assert out.dtype == torch.bfloat16
    # error of one final rounding plus the rounding of the inputs, not of nine running sums
    ref_from_rounded = conditional_depthwise_conv3x3_unfold(xb.double(), kb.double())
    torch.testing.assert_close(out.double(), ref_from_rounded, rtol=2 ** -8, atol=1e-2)
    assert (out.double() - ref).abs().max() < 0.15
    out.float().square().sum().backward()
    assert xb.grad.dtype == torch.bfloat16 and kb.grad.dtype == torch.bfloat16


def test_mixed_dtypes_under_cpu_autocast():
    """Under autocast the kernels come from a conv in bf16 while x may still be float32."""
    x, _ = _inputs(1, 3, 6, 6, dtype=torch.float32)
    head = torch.nn.Conv2d(3, 27, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kernels = head(x)
        out = conditional_depthwise_conv3x3(x, kernels)
    assert kernels.dtype == torch.bfloat16 and out.dtype == torch.float32
    out.sum().backward()
    assert x.grad.dtype == torch.float32 and head.weight.grad is not None
    expected = conditional_depthwise_conv3x3_unfold(x.detach(), kernels.detach().float())
    torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-5)


def test_saves_only_the_inputs_for_backward():
    """The graph keeps x and the kernels, not the 9x larger unfolded input."""
    x, k = _inputs(1, 4, 8, 8, dtype=torch.float32)

    def saved_numel(fn):
        sizes = []

        def pack(t):
            sizes.append((t.data_ptr(), t.numel()))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, k)
        return sum(n for _, n in dict(sizes).items())

    assert saved_numel(conditional_depthwise_conv3x3) == x.numel() + k.numel()
    assert saved_numel(conditional_depthwise_conv3x3_unfold) >= 2 * k.numel()


def test_shape_errors_are_explicit():
    x, k = _inputs(1, 2, 4, 4)
    with pytest.raises(ValueError, match="kernels must have shape"):
        conditional_depthwise_conv3x3(x, k[:, :9])
    with pytest.raises(ValueError, match=r"\[N,C,H,W\]"):
        conditional_depthwise_conv3x3(x[0], k)


def test_module_keeps_the_unused_official_batchnorm_frozen():
    conv = ConditionalDepthwiseConv(5)
    assert sorted(conv.state_dict()) == ["norm_layer.bias", "norm_layer.num_batches_tracked",
                                         "norm_layer.running_mean", "norm_layer.running_var",
                                         "norm_layer.weight"]
    assert not any(p.requires_grad for p in conv.parameters())
    x, k = _inputs(1, 5, 4, 4, dtype=torch.float32)
    before = conv.norm_layer.running_mean.clone()
    conv.train()(x, k)
    assert torch.equal(conv.norm_layer.running_mean, before)  # never called
    with pytest.raises(ValueError, match="unknown conditional convolution"):
        ConditionalDepthwiseConv(5, "fft")
