"""sdelab against its peers on the same inputs, in one run: training vs TRL's SFTTrainer (+ peft), evaluation vs
one-at-a-time `generate` and one-at-a-time label scoring (the papers' reference code path).

Each part runs in its own subprocess so that its peak RSS is its own. Prints a table of ratios, peak RSS and the
loss check, and writes bench/results/vs_peers.json with the machine description.

    python bench/vs_peers.py                 # the whole benchmark (~10 min on 2 cores)
    python bench/vs_peers.py --parts sdelab-train eval   # a subset

Needs `pip install -e '.[bench]'` (TRL) and ../shared/data (SST-2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# "-warm": the same part again in a new process that finds the first one's compile cache on disk (what every cell
# after a study's first sees); the first pays the whole compile, as the first cell on a new machine does
PARTS = ("ceiling", "sdelab-train", "sdelab-train-warm", "trl-train", "eval", "sdelab-train-zh",
         "sdelab-train-zh-warm", "trl-train-zh")
# the Chinese pair: Qwen2.5-0.5B on LCQMC pairs (the STM paper's task), the same tokens for both peers
ZH = {"model": "qwen2.5-0.5b-coder", "task": "lcqmc", "n_train": 512}
LORA = {"r": 8, "alpha": 16, "dropout": 0.0}
TRAIN = {"batch_size": 8, "lr": 2e-4, "epochs": 1, "warmup_ratio": 0.06, "max_grad_norm": 1.0, "seed": 0}


# ---------------------------------------------------------------------------------------------------------- inputs
def _inputs(args):
    """The same token ids for every peer: the task's examples (SST-2 by default) rendered by sdelab (inst-first,
    chat template)."""
    from sdelab.design import get_design, render
    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_tokenizer
    from sdelab.models.tokenize import encode_prompt, encode_train, make_formatter
    from sdelab.tasks import get_task, subset

    task = get_task(getattr(args, "task", "sst2"))
    rm = resolve_model(args.model)
    tok = load_tokenizer(rm)
    f = make_formatter(tok, "chat", 512)
    design = get_design("inst-first")
    pool = task.load("train", Path(args.data_root))
    both = subset(pool, args.n_train + 128, 0)  # the same seeded order: the first n train, the next 128 held out
    train, held = both[: args.n_train], both[args.n_train:]
    test = subset(task.load("dev", Path(args.data_root)), args.n_eval, 0)
    enc = [encode_train(f, render(task, design, ex)) for ex in train]
    held_enc = [encode_train(f, render(task, design, ex)) for ex in held]
    prompts = [encode_prompt(f, render(task, design, ex, response=False), 8)[0] for ex in test]
    return task, design, rm, tok, f, enc, held_enc, prompts, test


def _held_loss(lm, held_enc, pad_id) -> float:
    """Mean loss over the response tokens of held-out samples: the same function for every trained model."""
    from sdelab.models.device import autocast
    from sdelab.train.batching import collate
    from sdelab.train.loop import CausalLMLoss

    wrapped = CausalLMLoss(lm).eval()
    losses = []
    with torch.inference_mode(), autocast("bf16"):
        for i in range(0, len(held_enc), 16):
            losses.append(float(wrapped(**collate(held_enc[i:i + 16], pad_id))))
    return round(sum(losses) / len(losses), 4)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------------------------------------------------- parts
def part_ceiling(args) -> dict:
    """bf16 and fp32 matrix-multiply throughput (the issue's shape), and the LoRA-step FLOPs per token."""
    from sdelab.models.catalog import resolve_model
    from transformers import AutoConfig

    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(4096, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
        for _ in range(3):
            a @ b
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < 3:
            a @ b
            n += 1
        out[f"matmul_gflops_{name}"] = round(2 * 4096 * 576 * 1536 * n / (time.perf_counter() - t) / 1e9, 1)
    for key, model in (("", args.model), ("_zh", ZH["model"])):
        try:
            cfg = AutoConfig.from_pretrained(resolve_model(model).path)
        except Exception as e:  # the Chinese model is an optional install (make models-zh)
            print(f"no ceiling for {model}: {e}")
            continue
        h, i, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
        kv = h // cfg.num_attention_heads * cfg.num_key_value_heads
        non_embedding = L * (2 * h * h + 2 * h * kv + 3 * h * i)
        # forward 2N + backward through the frozen weights (activation gradients only) 2N. Left out, so the
        # ceiling is generous to the peers: attention scores, the LoRA products and the output layer.
        out["non_embedding_params" + key] = non_embedding
        out["flops_per_token" + key] = 4 * non_embedding
        out["ceiling_tokens_per_s" + key] = round(out["matmul_gflops_bf16"] * 1e9 / out["flops_per_token" + key], 0)
    return out


def part_sdelab_train(args) -> dict:
    from sdelab.models.load import load_causal_lm
    from sdelab.train.loop import TrainSettings, add_lora, train_generative

    task, design, rm, tok, f, enc, held_enc, _, _ = _inputs(args)
    t_load = time.perf_counter()
    lm = load_causal_lm(rm, "bf16")
    s = TrainSettings(epochs=TRAIN["epochs"], lr=TRAIN["lr"], batch_size=TRAIN["batch_size"],
                      warmup_ratio=TRAIN["warmup_ratio"], max_grad_norm=TRAIN["max_grad_norm"], lora_r=LORA["r"],
                      lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], precision="bf16", log_every=1)
    lm = add_lora(lm, s, TRAIN["seed"])
    load_s = time.perf_counter() - t_load
    st = train_generative(lm, enc, s, TRAIN["seed"], tok.pad_token_id, desc="sdelab train")
    if args.adapter:
        lm.save_pretrained(args.adapter)
    return {"tokens": st.tokens, "seconds": round(st.seconds, 2), "tokens_per_s": round(st.tokens_per_second, 1),
            "load_s": round(load_s, 1), "speed": st.speed,
            # after the first step (which holds the compile, when there is one); its tokens counted as the mean's
            "steady_tokens_per_s": round(st.tokens * (st.steps - 1) / st.steps
                                         / max(st.seconds - st.speed.get("first_step_s", 0), 1e-9), 1),
            "loss_curve": [p["loss"] for p in st.curve],
            "held_out_loss": _held_loss(lm, held_enc, tok.pad_token_id), "peak_rss_mb": _peak_rss_mb()}


def part_trl_train(args) -> dict:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    task, design, rm, tok, f, enc, held_enc, _, _ = _inputs(args)
    ds = datasets.Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in enc])
    # TRL's documented CPU recipe: the model as stored (fp32), bf16 mixed precision, no gradient checkpointing.
    lm = AutoModelForCausalLM.from_pretrained(rm.path, dtype=torch.float32)
    times = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            times["begin"] = time.perf_counter()

        def on_train_end(self, *a, **k):
            times["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=TRAIN["batch_size"],
                        num_train_epochs=TRAIN["epochs"], learning_rate=TRAIN["lr"], lr_scheduler_type="linear",
                        warmup_steps=int(TRAIN["warmup_ratio"] * math.ceil(len(enc) / TRAIN["batch_size"])),
                        max_grad_norm=TRAIN["max_grad_norm"], weight_decay=0.0,
                        logging_steps=1, save_strategy="no", report_to=[], bf16=True, gradient_checkpointing=False,
                        use_cpu=not torch.cuda.is_available(),
                        max_length=512, seed=TRAIN["seed"], dataloader_num_workers=0, disable_tqdm=False)
        peft_cfg = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                              target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = SFTTrainer(model=lm, args=cfg, train_dataset=ds, processing_class=tok, peft_config=peft_cfg,
                             callbacks=[Clock()])
        trainer.train()
    seconds = times["end"] - times["begin"]
    tokens = sum(len(e.input_ids) for e in enc) * TRAIN["epochs"]
    curve = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "loss_curve": curve, "held_out_loss": _held_loss(trainer.model, held_enc, tok.pad_token_id),
            "peak_rss_mb": _peak_rss_mb()}


def part_eval(args) -> dict:
    """The sdelab-trained adapter (merged, as sdelab evaluates): one-at-a-time vs batched generation, and
    one-at-a-time vs batched label scoring, with the predictions compared item by item."""
    from peft import PeftModel

    from sdelab.design import parse
    from sdelab.design.codec import label_texts
    from sdelab.infer.generate import contiguous_output_layer, generate
    from sdelab.models.device import autocast
    from sdelab.infer.prefix import common_prefix
    from sdelab.infer.score import score_candidates
    from sdelab.models.load import load_causal_lm
    from sdelab.models.tokenize import response_ids

    task, design, rm, tok, f, _, _, prompts, test = _inputs(args)
    prec = args.eval_precision
    lm = load_causal_lm(rm, prec)
    budget = 8
    out = {"n": len(prompts), "max_new_tokens": budget, "shared_prefix_tokens": common_prefix(prompts),
           "mean_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1)}

    def timed(fn):
        t = time.perf_counter()
        r = fn()
        return r, time.perf_counter() - t

    gold = [ex.gold for ex in test]
    def acc(preds):
        return round(sum(p == g for p, g in zip(preds, gold)) / len(gold), 4)
    def parsed(ts):
        return [parse(task, design, t)[0] for t in ts]
    if args.adapter:  # lever: evaluating with the LoRA adapter unmerged (sdelab before) vs merged into the weights
        lm = PeftModel.from_pretrained(lm, args.adapter)
        gens, s_gen = timed(lambda: generate(lm, tok, prompts, budget, args.eval_batch, precision=prec,
                                             share_prefix=0))
        out["batched_generate_unmerged_no_prefix_cache"] = {
            "seconds": round(s_gen, 2), "per_s": round(len(prompts) / s_gen, 2),
            "accuracy": acc(parsed([g.text for g in gens]))}
        lm = lm.merge_and_unload()
    lm.eval()
    eos = tok.eos_token_id

    def one_at_a_time_generate():
        texts = []  # the reference gets sdelab's fix for torch's strided-matmul slowdown too (a fair peer)
        with torch.inference_mode(), autocast(prec), contiguous_output_layer(lm):
            for p in prompts:
                g = lm.generate(input_ids=torch.tensor([p]), do_sample=False, max_new_tokens=budget,
                                eos_token_id=eos, pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                                top_k=None)
                new = g[0, len(p):].tolist()
                texts.append(tok.decode(new[: new.index(eos)] if eos in new else new, skip_special_tokens=True))
        return texts

    labels = label_texts(task, design)
    names = list(labels)
    cands = [response_ids(f, labels[n]) for n in names]

    def one_at_a_time_score():
        preds = []
        with torch.inference_mode(), autocast(prec):
            for p in prompts:
                best = []
                for c in cands:  # one forward pass per (prompt, label)
                    logits = lm(input_ids=torch.tensor([p + c])).logits[0, len(p) - 1: len(p) - 1 + len(c)]
                    lp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(c)[:, None]).sum()
                    best.append(float(lp))
                preds.append(names[max(range(len(names)), key=best.__getitem__)])
        return preds

    # every path runs once on a few prompts before any is timed: the first batched call of a process pays for
    # kernel and allocator warm-up, which would otherwise land on whichever path the benchmark times first
    warm, prompts[:] = prompts[:], prompts[: args.eval_batch]
    one_at_a_time_generate()
    generate(lm, tok, prompts, budget, args.eval_batch, precision=prec)
    generate(lm, tok, prompts, budget, args.eval_batch, precision=prec, share_prefix=0)
    one_at_a_time_score()
    score_candidates(lm, prompts, cands, tok.pad_token_id, args.eval_batch, prec)
    prompts[:] = warm
    ref_gen, s_ref_gen = timed(one_at_a_time_generate)
    gens, s_gen = timed(lambda: generate(lm, tok, prompts, budget, args.eval_batch, precision=prec))
    gens0, s_gen0 = timed(lambda: generate(lm, tok, prompts, budget, args.eval_batch, precision=prec,
                                           share_prefix=0))
    ref_score, s_ref_score = timed(one_at_a_time_score)
    scores, s_score = timed(lambda: score_candidates(lm, prompts, cands, tok.pad_token_id, args.eval_batch, prec))
    batched_score = [names[max(range(len(names)), key=sc.__getitem__)] for sc in scores]
    texts = [g.text for g in gens]
    out.update({
        "one_at_a_time_generate": {"seconds": round(s_ref_gen, 2), "per_s": round(len(prompts) / s_ref_gen, 2),
                                   "accuracy": acc(parsed(ref_gen))},
        "batched_generate": {"seconds": round(s_gen, 2), "per_s": round(len(prompts) / s_gen, 2),
                             "accuracy": acc(parsed(texts)), "batch_size": args.eval_batch,
                             "redone_alone": sum(g.alone for g in gens),
                             "identical_texts": sum(a == b for a, b in zip(ref_gen, texts))},
        "batched_generate_no_prefix_cache": {"seconds": round(s_gen0, 2), "per_s": round(len(prompts) / s_gen0, 2),
                                             "accuracy": acc(parsed([g.text for g in gens0])),
                                             "identical_texts": sum(a == g.text for a, g in zip(ref_gen, gens0)),
                                             "identical_to_prefix_cache": sum(a.text == b.text
                                                                              for a, b in zip(gens, gens0))},
        "one_at_a_time_score": {"seconds": round(s_ref_score, 2), "per_s": round(len(prompts) / s_ref_score, 2),
                                "accuracy": acc(ref_score)},
        "batched_score": {"seconds": round(s_score, 2), "per_s": round(len(prompts) / s_score, 2),
                          "accuracy": acc(batched_score),
                          "identical_predictions": sum(a == b for a, b in zip(ref_score, batched_score))},
        "peak_rss_mb": _peak_rss_mb(),
    })
    return out


# ---------------------------------------------------------------------------------------------------------- driver
def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
            "python": platform.python_version()}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for p in ("transformers", "peft", "accelerate", "trl"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def _run_part(name: str, args, adapter: str, cache: str) -> dict:
    cmd = [sys.executable, __file__, "--_part", name, "--model", args.model, "--n-train", str(args.n_train),
           "--n-eval", str(args.n_eval), "--data-root", args.data_root, "--eval-batch", str(args.eval_batch),
           "--eval-precision", args.eval_precision,
           "--adapter", adapter]
    print(f"== {name}", flush=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as res:
        # torch's compile cache starts empty for each model (the first cell on a new machine): its first part pays
        # the whole compile and its "-warm" part reuses what that one wrote to disk
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache} if args.cold_compile else None
        subprocess.run(cmd + ["--_result", res.name], check=True, env=env)
        return json.loads(Path(res.name).read_text())


def _table(r: dict) -> str:
    lines = []
    c = r.get("ceiling", {})
    sd, trl = r.get("sdelab-train"), r.get("trl-train")
    sz, tz = r.get("sdelab-train-zh"), r.get("trl-train-zh")
    lines += ["| training (same tokens, LoRA r=8 all-linear, batch 8, bf16) | tokens/s | x TRL | after the first step "
              "| peak RSS MB | held-out loss |", "|---|---|---|---|---|---|"]
    for tag, suffix in ((f"{r['settings']['model']}, {r['settings']['n_train']} SST-2 sentences", ""),
                        (f"{ZH['model']}, {ZH['n_train']} {ZH['task']} pairs", "-zh")):
        peer = r.get("trl-train" + suffix)
        if peer:
            lines.append(f"| {tag}: TRL SFTTrainer {r['versions']['trl']} | {peer['tokens_per_s']} | 1.00 | - | "
                         f"{peer['peak_rss_mb']} | {peer['held_out_loss']} |")
        for which, label in (("", "first cell (compile cache empty)"), ("-warm", "a later cell (cache on disk)")):
            row = r.get("sdelab-train" + suffix + which)
            if row:
                x = f"{row['tokens_per_s'] / peer['tokens_per_s']:.2f}" if peer else "-"
                lines.append(f"| {tag}: sdelab, {label} | {row['tokens_per_s']} | {x} | "
                             f"{row.get('steady_tokens_per_s', '-')} | {row['peak_rss_mb']} | {row['held_out_loss']} |")
    for row in (sd, sz):
        if row and row.get("speed"):
            lines.append(f"\nsdelab's speed plan: {row['speed']['why']}; first step {row['speed']['first_step_s']} s")
    for key, row, peer in (("", sd, trl), ("_zh", sz, tz)):
        if row and c.get("ceiling_tokens_per_s" + key):
            ceil = c["ceiling_tokens_per_s" + key]
            lines += ["", f"ceiling estimate{' (' + ZH['model'] + ')' if key else ''}: {c['matmul_gflops_bf16']} bf16 "
                          f"GFLOP/s / {c['flops_per_token' + key] / 1e6:.0f} MFLOP per token = {ceil:.0f} tokens/s; "
                          f"sdelab reaches {row['tokens_per_s'] / ceil:.2f} of it"
                          + (f", TRL {peer['tokens_per_s'] / ceil:.2f}" if peer else "")]
    ev = r.get("eval")
    if ev:
        ref = ev["one_at_a_time_generate"]["per_s"]
        lines += ["", f"| evaluation, {ev['n']} SST-2 dev sentences | examples/s | x one-at-a-time generate | "
                      "accuracy | identical to its one-at-a-time path |", "|---|---|---|---|---|"]
        for k, same in (("one_at_a_time_generate", "-"), ("batched_generate", "identical_texts"),
                        ("batched_generate_no_prefix_cache", "identical_texts"),
                        ("batched_generate_unmerged_no_prefix_cache", "-"),
                        ("one_at_a_time_score", "-"), ("batched_score", "identical_predictions")):
            e = ev.get(k)
            if e is None:
                continue
            lines.append(f"| {k.replace('_', ' ')} | {e['per_s']} | {e['per_s'] / ref:.1f} | {e['accuracy']} | "
                         f"{e[same] if same in e else '-'}{'/' + str(ev['n']) if same in e else ''}"
                         f"{' (' + str(e['redone_alone']) + ' redone alone)' if 'redone_alone' in e else ''} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="sst2", help=argparse.SUPPRESS)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-eval", type=int, default=256)
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--eval-precision", choices=("bf16", "fp32"), default="bf16",
                    help="weights and autocast of every evaluation path (the reference included)")
    ap.add_argument("--data-root", default=os.environ.get("SDELAB_DATA_ROOT", str(HERE.parent.parent / "shared/data")))
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--out", default=str(HERE / "results/vs_peers.json"))
    ap.add_argument("--adapter", default="")
    ap.add_argument("--warm-compile", dest="cold_compile", action="store_false",
                    help="use torch's usual on-disk compile cache (default: an empty one per model, per run)")
    ap.add_argument("--_part", help=argparse.SUPPRESS)
    ap.add_argument("--_result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._part:
        from sdelab.models.load import set_threads
        set_threads()
        if "-zh" in args._part:
            vars(args).update(ZH)
        fn = {"ceiling": part_ceiling, "sdelab-train": part_sdelab_train, "trl-train": part_trl_train,
              "eval": part_eval}[args._part.replace("-zh", "").removesuffix("-warm")]
        Path(args._result).write_text(json.dumps(fn(args)))
        return
    t0 = time.perf_counter()
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(), "versions": _versions(),
               "settings": {"model": args.model, "n_train": args.n_train, "n_eval": args.n_eval,
                            "lora": LORA, "train": TRAIN, "eval_batch": args.eval_batch,
                            "eval_precision": args.eval_precision, "zh": ZH,
                            "cold_compile": args.cold_compile}}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = str(Path(tmp) / "adapter")
        for name in args.parts:
            zh = "-zh" in name
            # the evaluation part evaluates the adapter the (cold) sdelab-train part saved
            keep = "sdelab-train" in args.parts and not zh and not name.endswith("-warm")
            results[name] = _run_part(name, args, adapter if keep else "", str(Path(tmp) / f"inductor{'-zh' * zh}"))
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(_table(results))
    print(f"\nwritten {args.out} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
