// Package configs owns Steergate's configuration: the Config types, Load
// (YAML through viper, ${VAR} expansion, STEERGATE_* environment overrides,
// strict unknown-key checks), defaults, Validate with file:key: message
// errors, and the shipped YAML files, embedded so that the binary serves the
// default with no files beside it.
package configs
