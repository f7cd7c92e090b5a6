"""The method-agnostic core: config schema and validation, the `Method` interface, train states,
checkpoints, sharding, code layout, workdirs, signals and metric writers. It never names a method."""
