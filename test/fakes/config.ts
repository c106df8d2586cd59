/**
 * Aurora's configuration read the way the program reads it (AuroraConfig.Default), from a map
 * instead of the environment: a test names the variables it cares about. DISCORD_TOKEN, the one
 * required variable, has a placeholder unless the test gives one.
 */
import { type ConfigError, ConfigProvider, Layer } from "effect"
import { AuroraConfig } from "../../src/domain/Config.js"

export const configFrom = (
  env: Readonly<Record<string, string>> = {}
): Layer.Layer<AuroraConfig, ConfigError.ConfigError> =>
  AuroraConfig.Default.pipe(
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ DISCORD_TOKEN: "test-token", ...env }))))
    )
  )
