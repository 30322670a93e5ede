"""The generative training loop: LoRA on a causal LM, one explicit loop, run through Accelerate.

The same code runs on CPU, one GPU, or many (`accelerate launch`). Logits are computed only at positions that
carry a label, so the vocabulary projection costs nothing on prompt tokens. Given a checkpoint file, the loop saves
its whole state there every few minutes and at the end, and a later call resumes from it with the same result as
an uninterrupted run (the batch plan is fixed by the seed up front).
"""
from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sdelab import fileio
from sdelab.errors import SdelabError
from sdelab.models.device import autocast, device_of, grad_scaler
from sdelab.models.tokenize import IGNORE, Encoded, pad_batch
from sdelab.train import distributed
from sdelab.train.batching import collate, length_grouped_batches
from sdelab.train.memory import OPTIMIZER_BYTES, SAFETY, available_bytes, chunked, dimensions
from sdelab.train.speed import applied, plan_speed, pretrained_of


@dataclass
class TrainSettings:
    epochs: float = 2.0
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: str | list[str] = "all-linear"
    precision: str = "bf16"  # resolved: bf16 | fp16 (with gradient scaling) | fp32
    group_by_length: bool = True
    log_every: int = 10
    tracking: tuple[str, ...] = ()  # 'tensorboard' and/or 'mlflow': Accelerate's trackers, besides train_log.jsonl
    checkpoint_every: float = 600.0  # seconds between checkpoints (when a checkpoint path is given)
    full: bool = False  # full-parameter fine-tuning (no LoRA)
    freeze_embeddings: bool = False  # with `full`: the input embedding matrix stays frozen
    compile: str = "auto"  # auto | on | off: regional torch.compile of the repeated blocks (train/speed.py)

    @classmethod
    def from_section(cls, section: dict, precision: str, checkpoint_every: float) -> TrainSettings:
        """From a study's `train:` section (config.TrainSection dumped): the same names, `lora.x` as `lora_x`, the
        resolved precision; what the loop does not use (max_length: applied when samples are encoded) is left."""
        flat = {**section, **{f"lora_{k}": v for k, v in (section["lora"] or {}).items()}, "precision": precision,
                "checkpoint_every": checkpoint_every, "tracking": tuple(section.get("tracking", ())),
                "full": section["lora"] is None}
        return cls(**{k: v for k, v in flat.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    tokens: int = 0  # real (non-pad) tokens processed
    trained_tokens: int = 0  # tokens that carried a label
    seconds: float = 0.0
    final_loss: float = float("nan")
    curve: list[dict] = field(default_factory=list)
    speed: dict = field(default_factory=dict)  # how the loop ran (train/speed.py's plan, the first step's seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class CausalLMLoss(torch.nn.Module):
    """Wraps a causal LM so that forward() returns the mean loss over labelled tokens, projecting only those
    positions onto the vocabulary. A module, so that DDP / FSDP wrappers see the whole forward."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask, labels):
        base = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        hidden = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        target = labels[:, 1:]
        keep = target != IGNORE
        if not keep.any():  # a stand-in chunk of a data-parallel step: zero, with gradients for DDP to reduce
            return hidden.sum() * 0.0
        h = hidden[:, :-1][keep]
        logits = base.get_output_embeddings()(h).float()
        return F.cross_entropy(logits, target[keep])


class SeqClsLoss(torch.nn.Module):
    """Wraps a sequence-classification model (the last non-pad token's hidden state -> a linear head) whose
    logits hold `heads` groups of classes (one group per aspect for multi-aspect sentiment, one otherwise);
    forward() returns the mean cross-entropy over heads."""

    def __init__(self, model, heads: int):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, input_ids, attention_mask, labels):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        logits = logits.view(logits.shape[0], self.heads, -1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


@dataclass
class ClsItem:
    input_ids: list[int]
    labels: list[int]  # one class index per head
    truncated: bool = False  # the input was cut to fit max_length


def collate_cls(items: list[ClsItem], pad_id: int) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch([e.input_ids for e in items], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e.labels for e in items])}


def add_lora(lm, s: TrainSettings, seed: int, task_type: str = "CAUSAL_LM"):
    """LoRA on the backbone; for SEQ_CLS, peft also trains the new head in full (its `modules_to_save`). With
    `s.full`, no adapter: every weight of `lm` is trained (its weights should be fp32 then)."""
    if s.full:
        for p in lm.parameters():
            p.requires_grad_(True)
        if s.freeze_embeddings:
            lm.get_input_embeddings().weight.requires_grad_(False)
        return lm
    from peft import LoraConfig, get_peft_model

    from sdelab.models.quiet import quiet_transformers
    torch.manual_seed(seed)
    cfg = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                     target_modules=s.lora_targets, task_type=task_type)
    with quiet_transformers():
        model = get_peft_model(lm, cfg)  # adapters stay fp32 even when the base is bf16 (autocast_adapter_dtype)
    if s.precision == "bf16":
        # Under bf16 autocast peft's cast of each LoRA input to fp32 is undone at once by autocast: two copies of
        # every activation, forward and backward, for nothing (about 15% of a step here; bench/train_levers.py).
        for m in model.modules():
            if hasattr(m, "cast_input_dtype_enabled"):
                m.cast_input_dtype_enabled = False
    return model


SHARDED = ("FSDP", "DEEPSPEED")  # launches whose weights live in shards (refused: see _train)

# called after every optimizer update with (batches done, stats so far, the module being trained)
OnUpdate = Callable[[int, TrainStats, torch.nn.Module], None]


def train_generative(lm, encoded: list[Encoded], s: TrainSettings, seed: int, pad_id: int,
                     log_path: Path | None = None, desc: str = "train", checkpoint: Path | None = None,
                     on_update: OnUpdate | None = None) -> TrainStats:
    """Train the (LoRA-wrapped) causal `lm` in place on `encoded` samples (loss on labelled tokens)."""
    return _train(CausalLMLoss(lm), encoded, lambda b: collate(b, pad_id), s, seed, log_path, desc, checkpoint,
                  on_update)


def train_discriminative(model, items: list[ClsItem], heads: int, s: TrainSettings, seed: int, pad_id: int,
                         log_path: Path | None = None, desc: str = "train",
                         checkpoint: Path | None = None, on_update: OnUpdate | None = None) -> TrainStats:
    """Train the (LoRA-wrapped) sequence-classification `model` in place: the discriminative paradigm."""
    return _train(SeqClsLoss(model, heads), items, lambda b: collate_cls(b, pad_id), s, seed, log_path, desc,
                  checkpoint, on_update)


def eager_attention(module, speed) -> bool:
    """Whether the steps run eager attention (its score matrices grow with the square of the length)."""
    model = pretrained_of(module)
    return speed.attention == "eager" or getattr(getattr(model, "config", None), "_attn_implementation", None) \
        == "eager"


def budget(module) -> float | None:
    """Bytes a step may take above the loaded model: a share of what is available, less the optimizer's state."""
    avail = available_bytes(device_of(module))
    if avail is None:
        return None
    return SAFETY * avail - dimensions(module)["trainable"] * OPTIMIZER_BYTES


def _fingerprint(s: TrainSettings, seed: int, plan: list[list[int]], encoded: list) -> str:
    """What a checkpoint must agree on to be resumed: settings that change the result, seed, batches, samples."""
    keep = {k: v for k, v in asdict(s).items() if k not in ("log_every", "tracking", "checkpoint_every", "compile")}
    blob = json.dumps([keep, seed, plan], sort_keys=True, default=str) + repr(encoded)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, fingerprint: str, module, opt, sched, scaler, stats: TrainStats, step: int,
                     run: tuple[float, int]) -> None:
    """The loop's whole state after `step` batches, written atomically (a crash mid-write keeps the last one)."""
    state = {"fingerprint": fingerprint, "step": step, "run": run, "stats": asdict(stats),
             "params": {n: p.detach().cpu().clone() for n, p in module.named_parameters() if p.requires_grad},
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
             "scaler": scaler.state_dict() if scaler else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda f: torch.save(state, f))


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:  # cut short, or not one
        print(f"[sdelab] {path}: not a readable checkpoint ({type(e).__name__}); training from the start", flush=True)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:  # other settings or data: start over
        return None
    return state


def _train(module, encoded: list, collate_fn, s: TrainSettings, seed: int, log_path: Path | None,
           desc: str, checkpoint: Path | None = None, on_update: OnUpdate | None = None) -> TrainStats:
    """The one training loop: seeded length-grouped batches, AdamW, linear warmup/decay, gradient accumulation,
    clipping, autocast, a progress bar with loss and tokens/s, a loss curve in `log_path`, (given a
    `checkpoint` path) resumable state saved every `s.checkpoint_every` seconds and at the end, and (given
    `on_update`) a call after every optimizer update (bench/time_to_accuracy.py snapshots the weights there)."""
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    # Precision is handled here (autocast) rather than by Accelerator(mixed_precision=...): Accelerate's state is a
    # process-wide singleton that refuses a second precision, and one process may train cells of both kinds.
    # The device is where the model was placed (models/device.py decided it); with several processes each trains
    # its share of every batch (train/memory.chunked), so the data is not sharded by Accelerate.
    tracker_dir = (log_path.parent / "tracking") if (s.tracking and log_path) else None
    distributed.start(device_of(module))
    acc = Accelerator(cpu=device_of(module).type == "cpu", log_with=list(s.tracking) or None,
                      project_dir=str(tracker_dir) if tracker_dir else None)
    main = acc.is_main_process
    if acc.distributed_type.name in SHARDED:
        raise SdelabError(f"{acc.distributed_type.name} launches are not supported yet: sdelab's loop checkpoints, "
                          "saves and evaluates whole weights, which FSDP and DeepSpeed shard across the processes; "
                          "launch data-parallel instead (accelerate launch --multi_gpu; docs/scaling.md)")
    if s.tracking and main:
        acc.init_trackers(log_path.parent.name.removesuffix(".partial") if log_path else "sdelab",
                          config={k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                                  for k, v in asdict(s).items()} | {"seed": seed})
    torch.manual_seed(seed)
    lengths = [len(e.input_ids) for e in encoded]
    n_epochs = math.ceil(s.epochs)
    plan = []  # the batches of every epoch, fixed up front so a seed fixes the order
    for ep in range(n_epochs):
        batches = length_grouped_batches(lengths, s.batch_size, seed * 1000 + ep, s.group_by_length)
        if ep + 1 > s.epochs:  # fractional last epoch
            batches = batches[: int(len(batches) * (s.epochs - ep))]
        plan += batches
    if not plan:
        raise SdelabError(f"train.epochs {s.epochs} of {len(encoded)} samples in batches of {s.batch_size} makes no "
                          "training step; raise train.epochs or the train size", field="train.epochs")
    total_updates = max(1, math.ceil(len(plan) / s.grad_accum))

    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(s.warmup_ratio * total_updates), total_updates)
    fingerprint = _fingerprint(s, seed, plan, encoded)
    state = _load_checkpoint(checkpoint, fingerprint)
    scaler = grad_scaler(s.precision, device_of(module))
    stats, start, (run_loss, run_n) = TrainStats(), 0, (0.0, 0)
    if state:
        named = dict(module.named_parameters())
        with torch.no_grad():
            for n, v in state["params"].items():
                named[n].copy_(v)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if scaler and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        stats, start, (run_loss, run_n) = TrainStats(**state["stats"]), state["step"], state["run"]
    speed = plan_speed(module, s.compile, sum(lengths[i] for b in plan[start:] for i in b),
                       max(lengths, default=0))
    chunks, fit = chunked(plan, encoded, dimensions(module), eager_attention(module, speed), budget(module), desc,
                          acc.process_index, acc.num_processes)
    chunks = [c for c in chunks if c.step > start]
    # a private generator: the loader's draw of a worker seed must not shift the dropout stream of a resumed run
    loader = torch.utils.data.DataLoader(encoded, batch_sampler=[c.indices for c in chunks], collate_fn=collate_fn,
                                         generator=torch.Generator())
    # (the scheduler is not prepared: Accelerate would step it once per process, for data it shards itself)
    model, opt = acc.prepare(module, opt)
    model.train()

    log = open(log_path, "w") if (log_path and main) else None
    if log:  # a resumed run's curve so far, then its own points
        log.writelines(json.dumps(p) + "\n" for p in stats.curve)
    t0 = time.perf_counter() - stats.seconds
    last_saved = time.perf_counter()
    bar = tqdm(total=len(plan), initial=start, desc=desc, unit="batch", dynamic_ncols=True,
               disable=not main, mininterval=1.0)
    checkpoint = checkpoint if main else None
    first_step, loop_t0 = None, time.perf_counter()
    step_loss, counts = 0.0, [0, 0, 0]  # this step's tokens, trained tokens, examples (this process's share)
    with applied(module, speed):
        for chunk, batch in zip(chunks, loader):
            step = chunk.step
            update = chunk.last and (step % s.grad_accum == 0 or step == len(plan))
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            # (a chunk without a labelled token adds nothing to the batch's loss; with several processes it still
            # runs, so that every process takes part in each gradient reduction)
            if chunk.weight or acc.num_processes > 1:
                with (nullcontext() if update else acc.no_sync(model)):
                    with autocast(s.precision, acc.device):
                        loss = model(**batch)
                    scaled = loss * chunk.weight / s.grad_accum
                    acc.backward(scaler.scale(scaled) if scaler else scaled)
                step_loss += float(loss.detach()) * chunk.weight
            if chunk.counted:
                counts[0] += int(batch["attention_mask"].sum())
                if batch["labels"].shape == batch["input_ids"].shape:  # token labels (generative)
                    counts[1] += int((batch["labels"][:, 1:] != IGNORE).sum())
                counts[2] += batch["input_ids"].shape[0]
            if not chunk.last:
                continue
            if update:
                if scaler:
                    scaler.unscale_(opt)
                if s.max_grad_norm:
                    acc.clip_grad_norm_(params, s.max_grad_norm)
                if scaler:  # (skips the update when fp16 gradients overflowed, and lowers the scale)
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            # the whole batch's loss and counts: each process's weighted share, summed (world times the mean)
            step_loss, *counts = distributed.total([step_loss / acc.num_processes, *counts], acc.device)
            stats.tokens += int(counts[0])
            stats.trained_tokens += int(counts[1])
            stats.examples += int(counts[2])
            counts = [0, 0, 0]
            if first_step is None:  # with compiling: mostly the compile
                first_step = time.perf_counter() - loop_t0
            loss_value, step_loss = step_loss, 0.0
            run_loss += loss_value
            run_n += 1
            stats.steps = step
            if update and on_update is not None:
                on_update(step, stats, module)
            elapsed = time.perf_counter() - t0
            if step % s.log_every == 0 or step == len(plan):
                point = {"step": step, "epoch": round(step / max(1, len(plan)) * s.epochs, 3),
                         "loss": round(run_loss / run_n, 5), "lr": sched.get_last_lr()[0],
                         "tokens": stats.tokens, "seconds": round(elapsed, 2)}
                stats.curve.append(point)
                stats.final_loss = point["loss"]
                if log:
                    log.write(json.dumps(point) + "\n")
                    log.flush()
                if s.tracking and main:
                    acc.log({"train/loss": point["loss"], "train/lr": point["lr"], "train/tokens": point["tokens"]},
                            step=step)
                run_loss, run_n = 0.0, 0
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{stats.tokens / max(elapsed, 1e-9):.0f}")
            bar.update(1)
            if checkpoint and update and step < len(plan) and time.perf_counter() - last_saved >= s.checkpoint_every:
                stats.seconds = elapsed
                _save_checkpoint(checkpoint, fingerprint, module, opt, sched, scaler, stats, step, (run_loss, run_n))
                last_saved = time.perf_counter()
    bar.close()
    if log:
        log.close()
    stats.seconds = time.perf_counter() - t0
    if first_step is not None:
        stats.speed = {**speed.to_dict(), "first_step_s": round(first_step, 2), "memory": fit}
    if checkpoint and (state is None or start < len(plan)):  # the trained state, for a resume that only evaluates
        _save_checkpoint(checkpoint, fingerprint, module, opt, sched, scaler, stats, len(plan), (0.0, 0))
    if s.tracking and main:
        acc.end_training()
    acc.free_memory()
    return stats
