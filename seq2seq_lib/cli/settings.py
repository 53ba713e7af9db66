"""Where ``train``'s settings come from, in layers, each over the one before: the dataclass
defaults (or, on ``--resume``, the checkpoint's settings) < ``--preset`` < ``--config FILE`` <
the flags. The resolved settings are written beside the checkpoint as ``MODEL.config.yaml``.

A config file has up to three sections, named as the dataclasses' fields::

    data:   {source: parallel, src_path: data/train.zh, trg_path: data/train.en, min_freq: 1}
    model:  {hid_dim: 256, attention: bahdanau, bidirectional: true}
    train:  {epochs: 14, batch_size: 64, checkpoint_path: checkpoints/run.pt}
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    preset_configs,
)
from .flags import SECTIONS, Setting, Values, describe, flag_of, setting, settings

SOURCE_PATHS = {"parallel": ("src_path", "trg_path"), "tsv": ("tsv_path",), "hsk": ()}
# the command line puts the last state beside checkpoint_path: a file does not choose it
NOT_IN_FILES = {("train", "last_checkpoint_path")}


@dataclass
class Layer:
    """The settings one source gives, and how to name one of them in an error."""

    origin: str  # "the command line", a config file's path, "preset demo", "the checkpoint X"
    values: Values = field(default_factory=lambda: {s: {} for s in SECTIONS})
    is_flags: bool = False

    def name(self, section: str, key: str) -> str:
        if self.is_flags:
            return flag_of(key, section)
        return f"{self.origin}: {section}.{key}"

    def sets(self, section: str, key: str) -> bool:
        return key in self.values[section]


Configs = tuple[DataConfig, ModelConfig, TrainConfig]


def default_layer() -> Layer:
    """The command line's defaults: the dataclasses' (or a field's ``cli_default``)."""
    return Layer("the defaults", {sec: {s.name: s.default for s in settings(sec)}
                                  for sec in SECTIONS})


def configs_layer(origin: str, configs: Configs) -> Layer:
    return Layer(origin, dict(zip(SECTIONS, (asdict(cfg) for cfg in configs))))


def preset_layer(name: str) -> Layer:
    """The values in which preset ``name`` differs from the dataclass defaults."""
    layer = Layer(f"preset {name}")
    for section, cfg in zip(SECTIONS, preset_configs(name)):
        default = asdict(type(cfg)())
        layer.values[section] = {k: v for k, v in asdict(cfg).items() if default[k] != v}
    return layer


def derive_source(layer: Layer) -> None:
    """A layer that names files but no ``source`` chooses the source those files belong to."""
    data = layer.values["data"]
    if "source" not in data:
        for source, keys in SOURCE_PATHS.items():
            if any(k in data for k in keys):
                data["source"] = source
                return


def merge(layers: list[Layer]) -> Values:
    """The values of the layers, each over the one before; a layer that sets ``source`` clears
    the files of the other sources that lower layers named."""
    merged: Values = {s: {} for s in SECTIONS}
    for layer in layers:
        for section, values in layer.values.items():
            if section == "data" and "source" in values:
                for source, keys in SOURCE_PATHS.items():
                    if source != values["source"]:
                        merged["data"].update({k: None for k in keys if k not in values})
            merged[section].update(values)
    return merged


def build(layers: list[Layer]) -> Configs:
    """The three configs from the layers; a senseless value is named as its layer gave it."""
    merged = merge(layers)

    def name_of(key: str) -> str:
        for layer in reversed(layers):
            for section in SECTIONS:
                if layer.sets(section, key) and layer.origin != "the defaults":
                    return layer.name(section, key)
        return flag_of(key)

    try:
        return tuple(cls(**merged[sec]) for sec, cls in SECTIONS.items())  # type: ignore[return-value]
    except ConfigError as exc:
        raise ValueError(describe(exc, name_of)) from None


def read_config_file(path: str | Path) -> Layer:
    """A config file as a layer; an unknown section or key, or a value of the wrong type, is
    refused with one line naming the file and the key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        raise ValueError(f"{path}{line}: not a readable YAML file") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected the sections {', '.join(SECTIONS)}, got a {type(raw).__name__}")
    layer = Layer(str(path))
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ValueError(f"{path}: unknown section {section!r} (use {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise ValueError(f"{path}: section {section!r} must hold 'key: value' lines")
        known = {s.name for s in settings(section)}
        for key, value in values.items():
            if key not in known or (section, key) in NOT_IN_FILES:
                raise ValueError(f"{path}: unknown key {section}.{key}")
            layer.values[section][key] = _checked(setting(section, key), value, layer)
    derive_source(layer)
    return layer


def _checked(s: Setting, value: Any, layer: Layer) -> Any:
    """``value`` if it has the setting's type (an integer is a float too)."""
    if value is None and (s.optional or s.default is None):
        return None
    if s.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, s.kind) and (s.kind is bool or not isinstance(value, bool))
    if ok and s.choices and value not in s.choices:
        raise ValueError(f"{layer.name(s.section, s.name)} must be one of "
                         f"{', '.join(s.choices)}, got {value!r}")
    if not ok:
        what = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise ValueError(f"{layer.name(s.section, s.name)} must be {what[s.kind]}, got {value!r}")
    return value


def config_path(checkpoint: str | Path) -> Path:
    """``checkpoints/model.pt`` → ``checkpoints/model.config.yaml``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.config.yaml")


def to_yaml(configs: Configs) -> str:
    """The settings as a config file that ``train --config`` reads back."""
    import yaml

    values = {sec: asdict(cfg) for sec, cfg in zip(SECTIONS, configs)}
    for section, key in NOT_IN_FILES:
        values[section].pop(key, None)
    return yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def save_config(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
