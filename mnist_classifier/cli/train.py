"""``mnist-train``: train the seed's classifier (on MNIST by default), save it, report the test result."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import UserError, in_flags
from ..kinds import KINDS
from ..models import MODELS, model_options
from ..options import add_flag, from_text, options_of, shown
from ..training.checkpoint import load_checkpoint
from ..training.config import (
    FACTS,
    MODEL_DEFAULTS,
    RESUMABLE,
    TRAIN_OPTIONS,
    RunFacts,
    TrainConfig,
    from_record,
    resolve,
    saved_record,
)
from ..training.distributed import PeerLost, data_parallel
from ..training.strategy import SingleProcess, under_torchrun
from ..training.trainer import TrainingDiverged, TrainingInterrupted
from ..utils import get_device
from . import OneLineParser, run_cli
from .train_run import load_configured_dataset, make_callbacks, precision_words, run  # noqa: F401 (the API)

MODEL_OPTIONS = model_options()


def build_parser() -> argparse.ArgumentParser:
    """The flags, made from ``TrainConfig``'s fields and the model families' ``Options``. An unset
    flag is absent from the parsed values, so that the defaults can be settled afterwards in one
    place (``settle``): the model family's, a table's, a preset's, a ``--config`` file's."""
    p = OneLineParser(prog="mnist-train", description=__doc__, argument_default=argparse.SUPPRESS)
    for name, opt in TRAIN_OPTIONS.items():
        add_flag(p, opt, argparse.SUPPRESS, _help(name, opt))
        if name == "amp":
            p.add_argument("--no-amp", dest="amp", action="store_const", const="off", help="the same as --amp off")
    p.add_argument("--config", metavar="FILE", help="replay a run's settings: its MODEL.config.json, or a YAML or "
                   "JSON file of flag names and values; flags given too still win")
    p.add_argument("--print_config", action="store_true", help="print the settled configuration as JSON and exit")
    group = p.add_argument_group("model options (each applies to the models named in its help)")
    for name, (opt, families) in MODEL_OPTIONS.items():
        add_flag(group, opt, argparse.SUPPRESS, _model_help(name, families))
    return p


def _help(name: str, opt) -> str:
    """The field's help, its default and the defaults that model families or tables choose instead."""
    default = opt.spec.cli.get("default", lambda: opt.default)()
    if opt.kind is bool or default is None:
        return opt.help
    return f"{opt.help} (default: {'; '.join([shown(default), *OTHER_DEFAULTS.get(name, ())])})"


def _other_defaults() -> dict[str, list[str]]:
    """For each setting, the defaults that model families and kinds of data choose instead of
    ``TrainConfig``'s, in words: "cnn: 12", "tables: from the rows", "linear on tables: 0.01"."""
    others: dict[str, list[str]] = {}
    for model, values in MODEL_DEFAULTS.items():
        for name, value in values.items():
            others.setdefault(name, []).append(f"{model}: {shown(value)}")
    for kind in KINDS.values():  # a kind's defaults for its default family, then any family's own
        general = kind.defaults(kind.default_model)
        for name, value in general.items():
            others.setdefault(name, []).append(f"{kind.title}: {'from the rows' if value is None else shown(value)}")
        for model in MODELS:
            for name, value in kind.defaults(model).items():
                if value != general.get(name, ...):
                    others.setdefault(name, []).append(f"{model} on {kind.title}: {shown(value)}")
    return others


# Fixed by the registries: worked out once, not for every parse.
OTHER_DEFAULTS = _other_defaults()



def _model_help(name: str, families: list[str]) -> str:
    specs = [options_of(MODELS[m].Options)[name] for m in families]
    differ = len({spec.help for spec in specs}) > 1
    described = "; ".join(f"{m}: {spec.help + ', ' if differ else ''}default {shown(spec.default)}"
                          for m, spec in zip(families, specs, strict=True))
    return f"{'' if differ else specs[0].help + ' '}({described})"


def parse_flags(argv: list[str] | None = None) -> tuple[TrainConfig, dict]:
    """Flags -> a validated ``TrainConfig``, and the flags given explicitly (name -> value)."""
    given = vars(build_parser().parse_args(argv))
    replayed = read_config_file(given.pop("config")) if "config" in given else {}
    if replayed and "resume" in given:
        raise UserError("--config and --resume do not go together: a resumed run continues with its checkpoint's "
                        "configuration")
    config = settle(replayed, {k: v for k, v in given.items() if k != "print_config"})
    if not config.resume:  # a resumed run is validated with its checkpoint's configuration (resumed_config)
        config = config.validate()
    return config, given


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Flags -> a validated ``TrainConfig``: the defaults of the model family, of tables and of a
    ``--preset`` under the flags given."""
    return parse_flags(argv)[0]


def settle(replayed: dict, given: dict) -> TrainConfig:
    """``TrainConfig`` from the flags given, over a ``--config`` file's values, over the defaults
    (``config.resolve``, which the estimators share); the machine's own defaults (the GPU) lowest."""
    machine = {name: opt.spec.cli["default"]() for name, opt in TRAIN_OPTIONS.items() if "default" in opt.spec.cli}
    return resolve(given, {**machine, **replayed})


CONFIG_MAX_BYTES = 2**20


def read_config_file(path: str) -> dict:
    """A ``--config`` file's settings: a run's own ``MODEL.config.json`` (what it settled), or YAML or
    JSON of flag names and values. Only settings a user could type are taken."""
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_MAX_BYTES + 1)
        if len(data) > CONFIG_MAX_BYTES:
            raise ValueError(f"over {CONFIG_MAX_BYTES // 2**20} MB; a run's settings take a few hundred bytes")
        text = data.decode("utf-8")
        values = json.loads(text) if path.lower().endswith(".json") else _yaml(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"--config {path}: cannot be read ({e})") from e
    if not isinstance(values, dict):
        raise UserError(f"--config {path}: expected names and values, got {type(values).__name__}")
    options = values.pop("model_options", None) or {}
    if not isinstance(options, dict):
        raise UserError(f"--config {path}: model_options must be names and values")
    # What a run found out about itself (its facts) or chose for its machine, not what it was asked:
    # a replay chooses its own outputs and device, and finds its own facts.
    recorded = {*FACTS, "format", "resume", "model_fn", "checkpoint_fn", "gpu_id", "tensorboard", "family_settings"}
    values = {k: v for k, v in values.items() if k not in recorded} | options
    every = {**TRAIN_OPTIONS, **{name: opt for name, (opt, _) in MODEL_OPTIONS.items()}}
    return {name: from_text(every[name], value) if name in every else value for name, value in values.items()}


def _yaml(text: str):
    """The YAML's value; anchors and aliases refused before anything is built, for an alias of aliases
    of aliases (a "billion laughs") expands 400 bytes into gigabytes."""
    import yaml

    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise ValueError("it uses an alias (*name); write each value out, a config file takes no aliases")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(str(e).splitlines()[0]) from e


def resumed_config(checkpoint_fn: str, saved: dict, explicit: dict) -> tuple[TrainConfig, RunFacts]:
    """The checkpoint's configuration, validated like flags, with the flags that may change applied,
    and the facts its run found (which it goes on with)."""
    refused = sorted(set(explicit) - set(RESUMABLE))
    if refused:
        may = ", ".join("--" + name for name in RESUMABLE if name != "resume")
        raise UserError(f"--{refused[0]} cannot change when resuming {checkpoint_fn} (the run continues with its "
                        f"saved configuration); only {may} can")
    config, facts = _saved_config(checkpoint_fn, saved)
    if "n_epochs" in explicit and explicit["n_epochs"] != config.n_epochs and config.lr_schedule != "constant":
        raise UserError(f"--n_epochs cannot change when resuming {checkpoint_fn}: its {config.lr_schedule} "
                        f"learning-rate schedule was planned for {config.n_epochs} epochs")
    # Output paths come from the command line or sit beside the checkpoint, never from inside it:
    # an edited checkpoint must not choose which file gets overwritten.
    beside = {"model_fn": str(Path(checkpoint_fn).parent / Path(config.model_fn).name), "checkpoint_fn": checkpoint_fn}
    config = replace(config, **{**beside, **explicit, "resume": checkpoint_fn})
    if "amp" in explicit:  # e.g. resumed on other hardware: choose the precision again
        facts.precision = facts.precision_reason = None
    return config.validate(), facts  # now the flags given: their errors name them, not the checkpoint


def _saved_config(checkpoint_fn: str, saved: dict) -> tuple[TrainConfig, RunFacts]:
    """The configuration and facts inside a checkpoint, checked as flags are, blaming the file for
    what fails."""
    try:
        return from_record(saved)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise UserError(f"{checkpoint_fn}: the checkpoint's configuration is damaged ({e})") from e
    except UserError as e:
        raise UserError(f"{checkpoint_fn}: the checkpoint's configuration is refused: {in_flags(e)}") from e


@contextlib.contextmanager
def for_this_process(gpu_id: int, timeout_s: float):
    """The strategy this process trains with: a ``SingleProcess`` on ``--gpu_id``'s device, or under
    torchrun its rank in the job (``distributed.data_parallel``, joined here and left afterwards)."""
    if not under_torchrun():
        yield SingleProcess(get_device(gpu_id))
        return
    with data_parallel(gpu_id, timeout_s) as strategy:
        yield strategy


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes are one line on stderr and exit status 2; an interrupted
    run exits 130 (Ctrl-C) or 143 (SIGTERM), a diverged one 1, after saving what it had."""
    def action():
        config, given = parse_flags(argv)
        print_only = given.pop("print_config", False)
        checkpoint, facts = {}, RunFacts()
        if config.resume:  # every rank reads it: on several machines, put it where each can
            checkpoint = load_checkpoint(config.resume)
            config, facts = resumed_config(config.resume, checkpoint["config"], given)
        if print_only:
            print(json.dumps(saved_record(config, facts), indent=2, sort_keys=True))
            return
        # Joined with the resumed configuration: its --gpu_id, unless given again, says CPUs or GPUs.
        with for_this_process(config.gpu_id, config.dist_timeout) as strategy:
            # Ranks started by hand may differ: refused here.
            strategy.check_same_settings(saved_record(config, facts))
            if config.sync_bn and not strategy.distributed and not config.resume:
                print("mnist-train: note: --sync_bn has no effect in a single process (it is for torchrun)",
                      file=sys.stderr)
            run(config, checkpoint.get("trainer"), checkpoint.get("data"), strategy, facts)


    try:
        run_cli("mnist-train", action)
    except TrainingInterrupted as stop:
        sys.exit(130 if stop.reason == "SIGINT" else 143)
    except (TrainingDiverged, PeerLost):
        sys.exit(1)


if __name__ == "__main__":
    main()
