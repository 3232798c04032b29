"""The scaling papers' conventions applied to symcost's own architectures, compared with each
paper's closed form (expanded difference), the terms where they differ by design shown
exactly, and the papers' published tables reproduced to their printed precision."""

import pytest
import sympy

import symcost
from symcost import conventions, papers
from symcost.papers import layers
from symcost.sizes import symbol
from symcost.training import training

L, d, h, dff, V, n_ctx, T, d_attn, B = (symbol(n) for n in
                                        ("n_layer", "d_model", "n_head", "d_ff", "n_vocab", "n_ctx", "T", "d_attn", "B"))


def zero(e):
    return sympy.expand(e) == 0


def free(name):
    """A report with d_ff (and d_attn) left symbolic instead of their defaults."""
    r = symcost.load(name).cost()
    keep = {"d_ff": "d_ff"}
    if name == "transformer_lm":
        keep["d_attn"] = "d_attn"
    return r.subs(keep)


def group(report, rule, *ids):
    """The sum of ``rule`` over the layers whose id (inside the blocks) is one of ``ids``."""
    return sympy.expand(sympy.Add(*(rep * rule(x) for rep, x in layers(report.analysis)
                                    if x.id.split(".")[-1] in ids)))


def count(report, name):
    return conventions.count(report, name)


def test_paper_conventions_are_registered_beside_the_counters():
    CONVENTIONS = conventions.CONVENTIONS
    for name in ("kaplan", "chinchilla", "megatron", "palm"):
        assert CONVENTIONS[name].unit == "FLOP"
    for name in ("symcost", "torch", "fvcore"):  # the FLOP counters' conventions are still there
        assert name in CONVENTIONS


# --------------------------------------------------------------------------- Kaplan et al. 2020


def test_kaplan_total_row():
    """N = 2·d_model·n_layer·(2·d_attn + d_ff), C_forward = 2N + 2·n_layer·n_ctx·d_attn per token,
    with the context n_ctx the T tokens the model processes."""
    r = free("transformer_lm")
    N = papers.kaplan_params(r)
    assert zero(N - 2 * d * L * (2 * d_attn + dff))
    C = papers.total(r, papers.kaplan) / T
    assert zero(C - (2 * N + 2 * L * T * d_attn))
    assert zero(count(r, "kaplan").total - C * T)


def test_kaplan_table1_rows_from_the_layers():
    r = free("transformer_lm")
    rows = papers.kaplan_table1(L, d, d_attn, dff, T, V)
    per_token = lambda e: sympy.expand(e / T)  # noqa: E731
    assert zero(group(r, papers.weight_params, "q", "k", "v") - rows["attention_qkv"][0])
    assert zero(per_token(group(r, papers.kaplan, "q", "k", "v")) - rows["attention_qkv"][1])
    assert zero(per_token(group(r, papers.kaplan, "attend")) - rows["attention_mask"][1])
    assert zero(group(r, papers.weight_params, "proj") - rows["attention_project"][0])
    assert zero(per_token(group(r, papers.kaplan, "proj")) - rows["attention_project"][1])
    assert zero(group(r, papers.weight_params, "fc", "fc_proj") - rows["feedforward"][0])
    assert zero(per_token(group(r, papers.kaplan, "fc", "fc_proj")) - rows["feedforward"][1])
    # Embed: the parameters are the two tables; Kaplan's 4·d_model FLOPs per token are not
    # symcost's count, which has only the sum of the two lookups (d_model adds per token).
    # (Kaplan's n_ctx is both the table's size and the context; here the table has n_ctx rows)
    table_rows = papers.kaplan_table1(L, d, d_attn, dff, n_ctx, V)
    assert zero(r.layer("wte").params + r.layer("wpe").params - table_rows["embed"][0])
    assert zero(per_token(r.layer("embed").flops) - d) and rows["embed"][1] - d == 3 * d
    # De-embed: 2·d_model·n_vocab per token, the tied head's products at 2 FLOPs per MAC
    assert zero(per_token(2 * r.layer("lm_head").macs) - rows["de_embed"][1])


def test_kaplan_differs_from_the_architecture_count_by_exactly_these_terms():
    r = free("transformer_lm")
    N = papers.kaplan_params(r)
    embeddings = (V + n_ctx) * d
    biases = L * (3 * d_attn + d + dff + d)
    norms = L * 4 * d + 2 * d
    assert zero(r.params - N - embeddings - biases - norms)
    # products: symcost's 2 FLOPs per MAC minus Kaplan = the de-embedding + the other half of the core
    C = papers.total(r, papers.kaplan)
    assert zero(2 * r.macs - C - 2 * T * d * V - 2 * L * T**2 * d_attn)


# --------------------------------------------------------------------------- Hoffmann et al. 2022

# Table A4: n_layer, d_model, ffw_size, n_heads, kv_size; the printed parameters and FLOP ratio
TABLE_A4 = [
    (10, 640, 2560, 10, 64, "73M", 1.03),
    (20, 1024, 4096, 16, 64, "305M", 1.10),
    (24, 1280, 5120, 10, 128, "552M", 1.08),
    (26, 1792, 7168, 14, 128, "1.1B", 1.04),
    (28, 2048, 8192, 16, 128, "1.6B", 1.03),
    (40, 3584, 14336, 28, 128, "6.8B", 0.99),
]


def test_chinchilla_appendix_f_from_the_architecture():
    r = free("transformer_lm")
    F = papers.total(r, papers.chinchilla)
    closed = papers.chinchilla_appendix_f(T, V, d, h, d_attn / h, L, dff)
    assert zero(F - closed)
    assert zero(papers.total(r, papers.chinchilla_no_embeddings)
                - papers.chinchilla_appendix_f(T, V, d, h, d_attn / h, L, dff, embeddings_and_logits=False))


def near_printed(n, printed):
    """Within one unit of the last printed digit ("73M": 73 ± 1 million; "1.1B": 1.1 ± 0.1 billion):
    the table prints 73.8M as 73M and 552.6M as 552M, but 1.593B as 1.6B."""
    value, unit = float(printed[:-1]), {"M": 10**6, "B": 10**9}[printed[-1]]
    digit = 10 ** -len(printed[:-1].partition(".")[2]) if "." in printed else 1
    return abs(n / unit - value) < digit


def chinchilla_N(layers_, d_model, ffw, heads, kv):
    """Chinchilla's parameter count from the transformer_lm architecture: its non-embedding
    parameters, with an untied output layer (d·V) and Transformer-XL relative positions
    (d² + 2d per layer) in place of the learned absolute positions."""
    r = symcost.load("transformer_lm").cost().subs(n_layer=layers_, d_model=d_model, d_ff=ffw, n_head=heads,
                                                   d_attn=heads * kv, n_vocab=32000, n_ctx=2048, T=2048)
    tables = r.layer("wte").params + r.layer("wpe").params
    return r, r.params - tables + d_model * 32000 + layers_ * (d_model**2 + 2 * d_model)


@pytest.mark.parametrize("layers_,d_model,ffw,heads,kv,params,ratio", TABLE_A4)
def test_chinchilla_table_a4_ratio_column(layers_, d_model, ffw, heads, kv, params, ratio):
    r, N = chinchilla_N(layers_, d_model, ffw, heads, kv)
    assert near_printed(N, params)
    seq = 2048
    # the erratum: the printed ratios come out only without the embeddings and the final logits
    forward = papers.total(r, papers.chinchilla_no_embeddings)
    assert round(float(3 * forward / (6 * N * seq)), 2) == ratio
    with_ends = papers.total(r, papers.chinchilla)
    assert round(float(3 * with_ends / (6 * N * seq)), 2) != ratio


# --------------------------------------------------------------------------- Narayanan et al. 2021

# Table 1: l (layers), h (hidden size), printed parameters (billions); V = 51,200, s = 2,048
TABLE_1 = [(24, 2304, "1.7"), (30, 3072, "3.6"), (36, 4096, "7.5"), (40, 6144, "18.4"), (48, 8192, "39.1"),
           (60, 10240, "76.1"), (80, 12288, "145.6"), (96, 16384, "310.1"), (105, 20480, "529.6"),
           (128, 25600, "1008.0")]


def test_megatron_parameter_formula_is_gpt2_without_the_final_layernorm():
    r = symcost.load("gpt2").cost()
    P = papers.megatron_params(L, d, V, n_ctx)
    assert zero(r.params - P - 2 * d)


@pytest.mark.parametrize("l,hidden,printed", TABLE_1)
def test_megatron_table1_parameter_column(l, hidden, printed):
    r = symcost.load("gpt2").cost().subs(n_layer=l, d_model=hidden, n_head=hidden // 128 or 1, n_vocab=51200,
                                         n_ctx=2048, T=2048)
    assert f"{r.params / 10**9:.1f}" == printed
    assert f"{float(papers.megatron_params(l, hidden, 51200, 2048)) / 1e9:.1f}" == printed


def test_megatron_flops_formula_and_the_training_rule_agree():
    r = symcost.load("gpt2").cost(batch="B").subs(n_ctx="T")
    F = papers.megatron_flops(B, T, L, d, V)
    assert zero(count(r, "megatron").total - F)
    # symcost's own training rule (backward = 2 products, recomputation of the blocks) gives it too
    assert zero(2 * training(r, recompute=True).macs - F)


# --------------------------------------------------------------------------- Chowdhery et al. 2022


def test_palm_per_token_formula():
    """6N + 12·L·H·Q·T with N the products' weights (the shared embedding once) and H·Q = d_model."""
    r = free("gpt2")
    N = papers.kaplan_params(r) + V * d
    per_token = papers.total(r, papers.palm) / T
    assert zero(per_token - papers.palm_flops_per_token(N, L, 1, d, T))
    # it is symcost's training rule without recomputation, at 2 FLOPs per MAC
    assert zero(2 * training(r).macs - papers.total(r, papers.palm))
    # and N is the architecture's count without biases, norms and the position table
    assert zero(r.params - N - n_ctx * d - L * (9 * d + dff) - 2 * d)


Q = symbol("d_head")


def test_palm_per_token_formula_on_the_palm_architecture():
    """On PaLM's own layout (multi-query attention: H query heads of Q, one key and one value
    head; SwiGLU; tied head) the rule is 6N + 12·L·H·Q·T with N every parameter but the
    (L + 1)·d layernorm scales; with re-materialization, + fraction·2N + 4·L·H·Q·T."""
    r = free("palm")
    N = r.params - (L + 1) * d
    assert zero(papers.total(r, papers.palm) / T - papers.palm_flops_per_token(N, L, h, Q, T))
    for fraction in (0, sympy.Rational(3, 4), 1):
        rule = papers.palm_rematerialized(fraction)
        assert zero(papers.total(r, rule) / T
                    - papers.palm_rematerialized_flops_per_token(N, L, h, Q, T, fraction))
    assert zero(papers.total(r, papers.palm_rematerialized(0.75)) - papers.total(r, papers.palm_rematerialized(
        sympy.Rational(3, 4))))
    with pytest.raises(symcost.SymcostError):
        papers.palm_rematerialized(1.5)


# Table 22: (n_layer, d_model, n_head), the recomputed share of the non-attention forward, the
# training tokens (Table 21 and Section 6.8: 795B for 62B, "due to an oversight in checkpoint
# selection"), and the printed TFLOPs per token without / with re-materialization, train FLOPs
# and PetaFLOP/s-days.
TABLE_22 = [
    ((32, 4096, 16), 0, 780 * 10**9, "0.0550", "0.0561", "4.29e22", "497"),
    ((64, 8192, 32), 0, 795 * 10**9, "0.388", "0.392", "3.08e23", "3570"),
    ((118, 18432, 48), sympy.Rational(3, 4), 780 * 10**9, "3.28", "4.10", "2.56e24", "29600"),
]


def printed(value, text):
    """``value`` agrees with the table's figure to the three significant digits it prints."""
    return f"{float(value):.2e}" == f"{float(text):.2e}"


@pytest.mark.parametrize("size,fraction,tokens,per_token,remat,train,pf_days", TABLE_22)
def test_palm_table22_from_the_architecture(size, fraction, tokens, per_token, remat, train, pf_days):
    n_layer, d_model, n_head = size
    r = symcost.load("palm").cost().subs(n_layer=n_layer, d_model=d_model, n_head=n_head, d_head=256,
                                         n_vocab=256_000, T=2048)
    model = papers.total(r, papers.palm) / 2048
    assert printed(model / 10**12, per_token)
    assert printed(papers.total(r, papers.palm_rematerialized(fraction)) / 2048 / 10**12, remat)
    assert printed(model * tokens, train)
    assert printed(model * tokens / (10**15 * 86400), pf_days)


def test_palm_tables_21_and_22_disagree():
    """Table 21's "Training FLOP Count" is 6·N·D with the nominal 8, 62 and 540 billion (37.4,
    295.7 and 2527.2 zettaFLOPs); Table 22 counts the attention and the real N: the 8B row
    differs by 15%. And 62B at the 780B tokens of Section 3 would be 3.03e23, not 3.08e23."""
    nominal = [6 * n * 10**9 * t * 10**9 / 10**21 for n, t in ((8, 780), (62, 795), (540, 780))]
    assert [f"{x:.1f}" for x in nominal] == ["37.4", "295.7", "2527.2"]
    r = symcost.load("palm").cost().subs(n_layer=32, d_model=4096, n_head=16, d_head=256, n_vocab=256_000, T=2048)
    table22 = papers.total(r, papers.palm) / 2048 * 780 * 10**9
    assert printed(table22, "4.29e22") and 1.14 < float(table22) / (nominal[0] * 10**21) < 1.16
    r62 = symcost.load("palm").cost().subs(n_layer=64, d_model=8192, n_head=32, d_head=256, n_vocab=256_000, T=2048)
    assert printed(papers.total(r62, papers.palm) / 2048 * 780 * 10**9, "3.03e23")


def test_palm_540b_model_flops_utilization():
    """PaLM 540B (Table 1: 540.35B parameters, 118 layers, 48 heads of 256; 2,048 tokens) at
    238.3K tokens/s on 6,144 TPU v4 chips of 275 peak TFLOP/s: the paper's 46.2% MFU."""
    per_token = papers.palm_flops_per_token(540_350_000_000, 118, 48, 256, 2048)
    value = papers.mfu(per_token, 238.3e3, 6144 * 275 * 10**12)
    assert f"{float(value) * 100:.1f}" == "46.2"
    # "45.7% without self-attention ((238.3×6×540)/(275×6144))"
    assert f"{float(papers.mfu(6 * 540 * 10**9, 238.3e3, 6144 * 275 * 10**12)) * 100:.1f}" == "45.7"
    # the architecture's own count gives the same 46.2%
    r = symcost.load("palm").cost().subs(n_layer=118, d_model=18432, n_head=48, d_head=256, n_vocab=256_000, T=2048)
    from_layers = papers.mfu(papers.total(r, papers.palm) / 2048, 238.3e3, 6144 * 275 * 10**12)
    assert f"{float(from_layers) * 100:.1f}" == "46.2"
    with pytest.raises(symcost.SymcostError):
        papers.mfu(per_token, "238300", 1)


# --------------------------------------------------------------------------- compare


def test_compare_gpt2_with_an_lstm_of_equal_parameters():
    from symcost.analysis import compare

    gpt2, lstm = symcost.load("gpt2"), symcost.load("lstm_lm")
    gpt2.defaults.update(n_layer=12, d_model=768, n_head=12, n_ctx=1024)
    lstm.defaults.update(n_layer=3, d_model=999)       # 124,439,743 parameters: 65 fewer
    rows = compare([gpt2, lstm], "T", values={"n_vocab": 50257}, names=["gpt2", "lstm_lm"])
    assert rows[0].params == 124_439_808 and abs(rows[1].params - rows[0].params) == 65
    assert rows[0].macs_order.degree == 2 and rows[1].macs_order.degree == 1
    assert rows[0].steps_order.degree == 0 and rows[1].steps_order.degree == 1


@pytest.mark.parametrize("l,h,V,s", [(2, 8, 11, 5), (3, 12, 7, 4)])
def test_cli_convention_megatron_is_the_papers_formula(capsys, l, h, V, s):
    import json

    from symcost.cli import main

    argv = ["cost", "gpt2", "--convention", "megatron", "--set", f"n_layer={l}", "--set", f"d_model={h}",
            "--set", "n_head=2", "--set", f"n_vocab={V}", "--set", f"n_ctx={s}", "--set", f"T={s}", "--format", "json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["total"] == papers.megatron_flops(1, s, l, h, V)


def test_cli_palm_540b_per_token(capsys):
    """The command in docs/transformers.md: PaLM 540B under --convention palm, per sequence."""
    import json

    from symcost.cli import main

    argv = ["cost", "palm", "--convention", "palm", "--set", "n_layer=118", "--set", "d_model=18432",
            "--set", "n_head=48", "--set", "d_head=256", "--set", "n_vocab=256000", "--set", "T=2048",
            "--format", "json"]
    assert main(argv) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert total == 6 * 540_354_281_472 * 2048 + 12 * 118 * 48 * 256 * 2048 * 2048
    assert printed(total / 2048 / 10**12, "3.28")
