// Package factory owns turning the rewards: section of a config into
// rewarders: Describe derives each reward's objectives and default weights
// from the config alone (for check-config and for validating routes), and
// Build loads the models, wraps them in their shaping and score cache, and
// closes them again.
package factory
