// Package prefs owns who is asking and what they prefer: API keys (stored
// as SHA-256 hashes, in the config or in Redis) with their tenant and
// role; per-user objective weights scoped by tenant; the log of steered
// responses that feedback refers to; and the feedback learner, an online
// Bradley–Terry update of a user's weights on the difference of objective
// vectors. State lives in Redis (shared by every replica, no expiry but
// the log's) or in bounded memory (lost on restart).
package prefs
