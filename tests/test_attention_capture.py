"""The phase-1 cross-attention capture on a tiny real UNet: the maps equal the materialised attention
probabilities of the cond rows, whatever attention implementation runs, and no hook outlives the capture."""
import torch

from demofusion_ext.anti_repetition.attention_capture import AttentionCapture, cross_attentions
from tiny_models import tiny_unet


class Recording:
    """A diffusers attention processor that materialises softmax(q k^T) of cross-attention (the reference)."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor
        self.inner, self.probs = AttnProcessor(), []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
        if encoder_hidden_states is not None:
            q = attn.head_to_batch_dim(attn.to_q(hidden_states))
            k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
            p = attn.get_attention_scores(q, k).float()                      # [rows * heads, queries, tokens]
            self.probs.append(p.view(hidden_states.shape[0], attn.heads, *p.shape[1:]).mean(1))
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kw)


def run(unet, x, ctx, capture=None):
    with torch.no_grad():
        if capture is None:
            return unet(x, torch.tensor([500.0] * x.shape[0]), encoder_hidden_states=ctx).sample
        with capture.hooked(unet):
            return unet(x, torch.tensor([500.0] * x.shape[0]), encoder_hidden_states=ctx).sample


def test_maps_are_the_cond_rows_attention_probabilities_averaged_over_heads_and_layers():
    unet = tiny_unet()
    torch.manual_seed(1)
    x, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    reference = Recording()
    unet.set_attn_processor(reference)
    capture = AttentionCapture(lambda n: [0, None])          # row 0: image 0's cond row; row 1: uncond
    run(unet, x, ctx, capture)
    layers = cross_attentions(unet)
    # one in the input blocks, two in the output blocks, all at latent / 1; the middle (latent / 2) is left out
    assert len(layers) == 3 and not any("mid" in name for name, _ in layers)
    assert sorted(p.shape[1] for p in reference.probs) == [64, 256, 256, 256]
    expected = torch.stack([p[0] for p in reference.probs if p.shape[1] == 256]).mean(0)     # [queries, tokens]
    maps = capture.maps(0, (16, 16))
    assert maps.shape == (77, 16, 16)                        # the coarsest grid recorded: latent / 1 here
    assert torch.allclose(maps, expected.T.reshape(77, 16, 16), atol=1e-6)
    assert capture.maps(1, (16, 16)) is None                 # uncond rows are never recorded


def test_any_attention_implementation_gives_the_same_maps_and_the_same_output():
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
    unet = tiny_unet()
    torch.manual_seed(2)
    x, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    maps, outputs = [], []
    for processor in (AttnProcessor(), AttnProcessor2_0()):
        unet.set_attn_processor(processor)
        capture = AttentionCapture(lambda n: [0, 1])
        outputs.append((run(unet, x, ctx, capture), run(unet, x, ctx)))
        maps.append(capture.maps(1, (16, 16)))
    assert torch.allclose(maps[0], maps[1], atol=1e-5)
    for hooked, plain in outputs:                            # the capture never changes what the model computes
        assert torch.equal(hooked, plain)


def test_no_hook_outlives_the_capture_even_after_an_error():
    unet = tiny_unet()

    def hooks():
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())
    capture = AttentionCapture(lambda n: [0] * n)
    try:
        with capture.hooked(unet):
            assert hooks() == 6                              # to_q and to_k of three cross-attentions
            raise RuntimeError("a failed phase 1")
    except RuntimeError:
        pass
    assert hooks() == 0


def test_memory_is_one_sum_per_image_and_grid_whatever_the_step_count():
    unet = tiny_unet()
    x, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 32)
    capture = AttentionCapture(lambda n: [0])
    for _ in range(3):
        run(unet, x, ctx, capture)
    assert capture.nbytes == 77 * 16 * 16 * 4
    assert capture.calls == 3 * 3


def test_once_the_wanted_grid_is_seen_the_other_grids_are_not_computed():
    """AccDiffusion's maps come from latent / 4; finer layers run before it in the first call only."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 32, 32), down_block_types=("CrossAttnDownBlock2D",) * 3,
                                up_block_types=("CrossAttnUpBlock2D",) * 3, cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=32).eval().requires_grad_(False)
    x, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 32)
    capture = AttentionCapture(lambda n: [0], target_queries=16)            # 16 x 16 latent / 4 = 4 x 4
    adds, add = [], capture.sums.add
    capture.sums.add = lambda key, *a, **kw: (adds.append(key), add(key, *a, **kw))
    for _ in range(3):
        run(unet, x, ctx, capture)
    assert adds.count((0, 16)) == 3 * 3            # one input and two output layers at 4 x 4, every call
    assert adds.count((0, 256)) == 1               # the input layer at 16 x 16 of the first call only
    assert capture.maps(0, (16, 16)).shape == (77, 4, 4)
