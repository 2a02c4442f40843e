"""The studies' presets, shipped as study files (see afbench.sweep.study): one TOML file per preset."""
