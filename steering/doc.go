// Package steering owns inference-time steering: the Strategy interface and
// the registry strategies join from their own files (none, best_of_n,
// adaptive, particles, self_consistency); the Resolver, which lays a request's "steering" object over
// its route's defaults into fresh values and checks the result once into a
// Plan; the Engine the gateway calls with that plan; the response cache in
// front of it; and the shared machinery of sampling, scoring (with shape
// checks and unusable utilities set aside), ranking, choosing, particle
// resampling and reporting. Rewards come from package rm.
package steering
