"""The one device and precision decision (models/device.py) with the machine mocked, the memory figure per device,
the data-parallel shares of a batch (their weighted gradients add up to the one-process batch's), and fp16 with
gradient scaling run for real on the CPU through the training loop."""
import math

import pytest
import torch

from sdelab.errors import SdelabError
from sdelab.models import device as dev
from sdelab.models.device import Hardware, resolve_device, resolve_precision

GPU = Hardware(cuda_devices=2, cuda_bf16=True)
OLD_GPU = Hardware(cuda_devices=1, cuda_bf16=False)
MAC = Hardware(mps=True, mps_bf16=False)
CPU_BF16 = Hardware(cpu_bf16=True)
CPU = Hardware()


@pytest.mark.parametrize("hw, want", [(GPU, "cuda:0"), (OLD_GPU, "cuda:0"), (MAC, "mps"), (CPU_BF16, "cpu"),
                                      (CPU, "cpu")])
def test_auto_takes_the_best_device(hw, want):
    assert str(resolve_device(None, env={}, hw=hw)) == want
    assert str(resolve_device("auto", env={}, hw=hw)) == want


def test_the_environment_overrides_the_study():
    assert str(resolve_device("cuda", env={"SDELAB_DEVICE": "cpu"}, hw=GPU)) == "cpu"
    assert str(resolve_device("cpu", env={"SDELAB_DEVICE": "cuda:1"}, hw=GPU)) == "cuda:1"
    assert str(resolve_device("cpu", env={"SDELAB_DEVICE": " "}, hw=GPU)) == "cpu"  # empty: not set


def test_each_process_of_a_launch_takes_its_local_gpu():
    assert str(resolve_device(None, env={"LOCAL_RANK": "1"}, hw=GPU)) == "cuda:1"
    assert str(resolve_device("cuda:0", env={"LOCAL_RANK": "1"}, hw=GPU)) == "cuda:0"  # named: as asked


@pytest.mark.parametrize("requested, env, hw, says", [
    ("cuda", {}, CPU, "the study's device: asks for 'cuda', and torch sees no CUDA device"),
    (None, {"SDELAB_DEVICE": "cuda"}, CPU, "SDELAB_DEVICE asks for 'cuda'"),
    ("cuda:2", {}, GPU, "asks for cuda:2, and this machine has 2 CUDA device(s)"),
    ("mps", {}, CPU, "no Apple GPU"),
    (None, {"SDELAB_DEVICE": "gpu"}, GPU, "SDELAB_DEVICE 'gpu' is not a device"),
])
def test_a_device_the_machine_lacks_is_a_clear_error(requested, env, hw, says):
    with pytest.raises(SdelabError) as e:
        resolve_device(requested, env=env, hw=hw)
    assert says in str(e.value)


@pytest.mark.parametrize("device, hw, want", [("cuda:0", GPU, "bf16"), ("cuda:0", OLD_GPU, "fp16"),
                                              ("mps", MAC, "fp16"), ("mps", Hardware(mps=True, mps_bf16=True), "bf16"),
                                              ("cpu", CPU_BF16, "bf16"), ("cpu", CPU, "fp32")])
def test_auto_precision_follows_the_device(device, hw, want):
    assert resolve_precision("auto", torch.device(device), hw=hw) == want


def test_a_named_precision_is_taken_as_asked():
    for p in ("bf16", "fp16", "fp32"):
        assert resolve_precision(p, "cpu", hw=CPU) == p


def test_autocast_and_scaler_take_the_device_type():
    with dev.autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with dev.autocast("fp16", torch.device("cpu")):
        assert torch.get_autocast_dtype("cpu") == torch.float16
    with dev.autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    assert dev.grad_scaler("bf16", "cpu") is None and dev.grad_scaler("fp32", "cpu") is None
    s = dev.grad_scaler("fp16", "cpu")
    assert isinstance(s, torch.amp.GradScaler) and s._device == "cpu"  # noqa: SLF001


def test_the_study_names_a_device_or_fails_where_it_says_so(tmp_path):
    from sdelab.config import load_study
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ntask: tiny\ndevice: cuda:0\n")
    assert load_study(p)[0].device == "cuda:0"
    p.write_text("name: s\ntask: tiny\ndevice: gpu0\n")
    with pytest.raises(SdelabError) as e:
        load_study(p)
    assert "device" in str(e.value) and ":3" in str(e.value)  # file:line of the field


def test_memory_available_per_device(monkeypatch):
    from sdelab.train import memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (5 << 30, 16 << 30))
    assert memory.available_bytes(torch.device("cuda", 0)) == 5 << 30
    assert memory.available_bytes("mps") is None
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 8 << 30)
    assert memory.available_bytes("cpu") == 8 << 30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes share the machine's memory
    assert memory.available_bytes("cpu") == 4 << 30


def _items(lengths_labels):
    from sdelab.models.tokenize import Encoded
    return [Encoded(list(range(1, n + 1)), [-100] * (n - k) + list(range(k)), False) for n, k in lengths_labels]


def test_the_processes_shares_add_up_to_the_batch():
    """Each process's chunks carry its share of the batch's labelled tokens times the processes; their sum over
    processes is `world` per batch (DDP divides by it), and a process with nothing to do gets a weight-0 stand-in."""
    from sdelab.train.memory import chunked
    items = _items([(10, 3), (20, 9), (8, 1), (30, 12), (12, 5)])
    plan = [[0, 1, 2, 3, 4], [4]]
    dims = {"layers": 2, "hidden": 8, "intermediate": 16, "heads": 2}
    for world in (1, 2, 3):
        shares = [chunked(plan, items, dims, False, None, rank=r, world=world)[0] for r in range(world)]
        for step in (1, 2):
            mine = [c for s in shares for c in s if c.step == step]
            assert math.isclose(sum(c.weight for c in mine), world)
            assert sorted(i for c in mine if c.counted for i in c.indices) == sorted(plan[step - 1])
            assert sum(c.last for c in mine) == world  # every process steps once per batch
        if world > 1:
            stand_in = [c for c in shares[1] if c.step == 2]
            assert stand_in[0].weight == 0 and not stand_in[0].counted


def test_the_processes_gradients_average_to_the_one_process_gradient(tiny_model_dir):
    """The weighting, with the gradients of two simulated processes averaged as DDP does."""
    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm
    from sdelab.train.batching import collate
    from sdelab.train.loop import CausalLMLoss
    from sdelab.train.memory import chunked
    lm = load_causal_lm(resolve_model(str(tiny_model_dir)), "fp32")
    loss_of = CausalLMLoss(lm)
    items = _items([(10, 3), (20, 9), (8, 1), (30, 12), (12, 5)])
    dims = {"layers": 2, "hidden": 8, "intermediate": 16, "heads": 2}

    def grads(chunks):
        lm.zero_grad()
        for c in chunks:
            (loss_of(**collate([items[i] for i in c.indices], 0)) * c.weight).backward()
        return [p.grad.clone() for p in lm.parameters() if p.grad is not None]

    one = grads(chunked([[0, 1, 2, 3, 4]], items, dims, False, None)[0])
    two = [grads(chunked([[0, 1, 2, 3, 4]], items, dims, False, None, rank=r, world=2)[0]) for r in (0, 1)]
    for g1, a, b in zip(one, *two):
        assert torch.allclose(g1, (a + b) / 2, atol=1e-6)


def test_fp16_with_gradient_scaling_trains_on_the_cpu(tiny_model_dir, tmp_path):
    """The fp16 path (a GPU without bf16) through the same loop, for real on the CPU: the scaler scales, skips
    nothing on a healthy run, the loss falls, and its state is in the checkpoint."""
    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm
    from sdelab.train.loop import TrainSettings, add_lora, train_generative
    lm = load_causal_lm(resolve_model(str(tiny_model_dir)), "fp16")
    assert lm.dtype == torch.float16
    s = TrainSettings(epochs=6, batch_size=4, lr=5e-3, precision="fp16", log_every=1)
    lm = add_lora(lm, s, 0)
    items = _items([(12, 4), (16, 6), (10, 3), (14, 5)] * 3)
    stats = train_generative(lm, items, s, 0, 0, checkpoint=tmp_path / "state.pt")
    losses = [p["loss"] for p in stats.curve]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0


@pytest.mark.parametrize("kind", ["FSDP", "DEEPSPEED"])
def test_a_sharded_launch_is_refused_before_a_step(tiny_model_dir, monkeypatch, kind):
    """FSDP and DeepSpeed shard the weights the loop checkpoints, saves and evaluates whole: refused with the
    launch to use instead. (On a CPU Accelerate itself turns an FSDP launch into a data-parallel one, so the
    launch type is mocked here.)"""
    import accelerate
    from accelerate.utils import DistributedType

    from sdelab.models.catalog import resolve_model
    from sdelab.models.load import load_causal_lm
    from sdelab.train.loop import TrainSettings, add_lora, train_generative

    class Sharded(accelerate.Accelerator):
        distributed_type = getattr(DistributedType, kind)

    monkeypatch.setattr(accelerate, "Accelerator", Sharded)
    s = TrainSettings(epochs=1, batch_size=2, precision="fp32")
    lm = add_lora(load_causal_lm(resolve_model(str(tiny_model_dir)), "fp32"), s, 0)
    with pytest.raises(SdelabError, match=f"{kind} launches are not supported yet.*--multi_gpu"):
        train_generative(lm, _items([(8, 2)] * 4), s, 0, 0)


def test_the_examples_load():
    """The Accelerate configs docs/scaling.md points at are ones Accelerate reads, and the GPU study validates."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    from sdelab.config import load_study
    root = Path(__file__).resolve().parents[2] / "examples"
    for f in sorted((root / "accelerate").glob("*.yaml")):
        cfg = load_config_from_file(str(f))
        assert cfg.distributed_type.name == "MULTI_GPU" and cfg.mixed_precision == "no", f
    study, _ = load_study(root / "studies" / "sde_masa_zh_7b_gpu.yaml")
    assert study.device == "auto" and len(study.seeds) == 3
