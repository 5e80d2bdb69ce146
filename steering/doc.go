// Package steering owns inference-time steering: the Strategy interface,
// the registry built from config, per-request parameters (the request's
// "steering" field over the route's defaults), the Engine the gateway calls,
// and each strategy in its own file: none (passthrough), best_of_n and
// adaptive. Rewards come from package rm; this package turns their
// objective scores into one utility per candidate under the effective
// weights, picks, and reports what it bought and cost.
package steering
