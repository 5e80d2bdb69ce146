package configs

import (
	"time"
)

// Config is the whole configuration.
type Config struct {
	// File is where the config was read from, for messages.
	File string `mapstructure:"-" yaml:"-"`

	Server      Server             `mapstructure:"server"`
	Log         Log                `mapstructure:"log"`
	Backends    map[string]Backend `mapstructure:"backends"`
	Models      []Model            `mapstructure:"models"`
	Rewards     map[string]Reward  `mapstructure:"rewards"`
	ONNX        ONNXRuntime        `mapstructure:"onnx"`
	Cache       Cache              `mapstructure:"cache"`
	Auth        Auth               `mapstructure:"auth"`
	Preferences Preferences        `mapstructure:"preferences"`
	Experiments []Experiment       `mapstructure:"experiments"`
}

// Experiment is an A/B test of steering settings on some models.
type Experiment struct {
	Name string `mapstructure:"name"`
	// Models are the public names it covers: a route's name covers its
	// aliases too; an alias covers only requests that use it.
	Models []string `mapstructure:"models"`
	// Unit is what is assigned: "user" (the request's user, sticky) or
	// "request".
	Unit    string          `mapstructure:"unit"`
	Arms    []ExperimentArm `mapstructure:"arms"`
	Control string          `mapstructure:"control"` // the arm the others are compared with
	Outcome Outcome         `mapstructure:"outcome"`
	State   string          `mapstructure:"state"` // running or stopped
	// Allocation "fixed" (the arms' weights) or "thompson": new units go
	// to each arm with the posterior chance that it is best, at least
	// MinShare.
	Allocation string  `mapstructure:"allocation"`
	MinShare   float64 `mapstructure:"min_share"`
	Alpha      float64 `mapstructure:"alpha" unset:"true"` // error rate of the intervals and the verdict
	// MixingSD is the spread of the effect sizes the confidence sequence
	// is tuned for, in units of the outcome's standard deviation.
	MixingSD float64 `mapstructure:"mixing_sd" unset:"true"`
}

// ExperimentArm is one arm: its share of traffic and the steering laid
// over the route's.
type ExperimentArm struct {
	Name     string         `mapstructure:"name"`
	Weight   float64        `mapstructure:"weight" unset:"true"`
	Steering map[string]any `mapstructure:"steering"`
}

// Outcome is what an experiment measures: users' feedback, or an
// evaluation reward scoring the final answer of every arm alike on a share
// of traffic.
type Outcome struct {
	Type   string  `mapstructure:"type"` // feedback or reward
	Reward string  `mapstructure:"reward"`
	Share  float64 `mapstructure:"share" unset:"true"`
}

// Auth lists the API keys: their SHA-256 hashes (steergate hash-key) with
// a tenant and a role. With none, and no Redis lookup, the gateway is
// open: every request is one local tenant.
type Auth struct {
	Keys []APIKey `mapstructure:"keys"`
	// Redis also looks keys up in Redis (hashes PREFIXkey:HASH with
	// fields tenant, role, name), so that keys can change without a
	// restart; it needs cache.redis.
	Redis bool `mapstructure:"redis"`
}

// APIKey is one configured key.
type APIKey struct {
	Name   string `mapstructure:"name"`
	Hash   string `mapstructure:"hash"` // hex SHA-256 of the key
	Tenant string `mapstructure:"tenant"`
	Role   string `mapstructure:"role"` // user (default) or admin
}

// Preferences tunes per-user weights and the feedback learner.
type Preferences struct {
	MaxWeight       float64       `mapstructure:"max_weight"`       // bound of every user weight
	LearningRate    float64       `mapstructure:"learning_rate"`    // η of the Bradley–Terry update
	L2              float64       `mapstructure:"l2"`               // pull toward the route's weights per update
	LogTTL          time.Duration `mapstructure:"log_ttl"`          // how long responses are kept for feedback
	MemoryUsers     int           `mapstructure:"memory_users"`     // users kept without Redis
	MemoryResponses int           `mapstructure:"memory_responses"` // responses kept without Redis
}

// Cache configures the response and reward-score caches: in memory, or in
// Redis when redis.addrs is set (shared by every replica).
type Cache struct {
	MemoryBytes int           `mapstructure:"memory_bytes"` // bound of the in-memory cache
	Redis       Redis         `mapstructure:"redis"`
	Responses   ResponseCache `mapstructure:"responses"`
}

// Redis locates the shared cache: one address is a standalone server,
// several (or cluster: true) a cluster, master_name a Sentinel set.
type Redis struct {
	Addrs        []string      `mapstructure:"addrs"`
	MasterName   string        `mapstructure:"master_name"`
	Cluster      bool          `mapstructure:"cluster"`
	Username     string        `mapstructure:"username"`
	Password     string        `mapstructure:"password" secret:"true"`
	DB           int           `mapstructure:"db"`
	Prefix       string        `mapstructure:"prefix"`
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	ReadSlack    time.Duration `mapstructure:"read_slack"`  // what a read may take beyond the typical round trip
	WriteQueue   int           `mapstructure:"write_queue"` // writes waiting to be sent; more are dropped
	PoolSize     int           `mapstructure:"pool_size"`
	MinIdle      int           `mapstructure:"min_idle"`
}

// ResponseCache configures caching of whole answers.
type ResponseCache struct {
	// Enabled caches reproducible requests (a seed, or temperature 0) that
	// do not say otherwise in steering.cache.
	Enabled       bool          `mapstructure:"enabled"`
	TTL           time.Duration `mapstructure:"ttl"`
	MaxEntryBytes int           `mapstructure:"max_entry_bytes"`
	// MaxTTL bounds the ttl_s a request may ask for.
	MaxTTL time.Duration `mapstructure:"max_ttl"`
}

// ONNXRuntime locates the ONNX Runtime shared library. Empty: the
// ONNXRUNTIME_LIB environment variable, then the cache folder `make`
// fills.
type ONNXRuntime struct {
	Library string `mapstructure:"library"`
}

// Reward types.
const (
	RewardRules    = "rules"
	RewardONNX     = "onnx"
	RewardONNXARM  = "onnx_arm"
	RewardONNXPRM  = "onnx_prm"
	RewardLexicon  = "lexicon"
	RewardValue    = "value"
	RewardJudge    = "judge"
	RewardRemote   = "remote"
	RewardEnsemble = "ensemble"
)

// Reward configures one named reward model.
type Reward struct {
	Type    string `mapstructure:"type"`
	Version string `mapstructure:"version"` // part of every cache key
	// Objectives names the model's outputs (onnx, remote) or selects rules.
	Objectives []string `mapstructure:"objectives"`
	// Weights are the reward's default objective weights (rules: verbosity
	// 0, repetition −1, every other objective 1; other types: 1 each).
	Weights   map[string]float64       `mapstructure:"weights" signed:"true"`
	Normalize map[string]Normalization `mapstructure:"normalize"`
	Transform map[string]Transform     `mapstructure:"transform"`
	Cache     *bool                    `mapstructure:"cache"` // score cache; default on
	CacheTTL  time.Duration            `mapstructure:"cache_ttl" unset:"true"`

	Rules    RulesReward    `mapstructure:"rules"`
	Judge    JudgeReward    `mapstructure:"judge"`
	Remote   RemoteReward   `mapstructure:"remote"`
	Ensemble EnsembleReward `mapstructure:"ensemble"`
	Model    ONNXModel      `mapstructure:"onnx"`
	PRM      PRMReward      `mapstructure:"prm"`
	// Lexicon maps an objective to the patterns a lexicon (a token-level
	// reward with no model) rewards; weights weigh the objectives.
	Lexicon map[string][]string `mapstructure:"lexicon"`
	Value   ValueReward         `mapstructure:"value"`
}

// ValueReward uses a sequence reward as a token-level value function.
type ValueReward struct {
	Reward string `mapstructure:"reward"`
}

// TokenLevel reports whether a reward scores candidate next pieces of text
// (guided decoding) rather than answers.
func (r Reward) TokenLevel() bool {
	return r.Type == RewardONNXARM || r.Type == RewardLexicon || r.Type == RewardValue
}

// PRMReward is how a process reward model (onnx_prm) reads steps: the
// separator token written after each step, the delimiter that splits an
// answer into steps when the strategy gave none, the class whose
// probability is a step's score, and how step scores become one.
type PRMReward struct {
	Separator string   `mapstructure:"separator"`
	Delimiter string   `mapstructure:"delimiter"`
	Positive  *int     `mapstructure:"positive"`           // default 1
	Aggregate string   `mapstructure:"aggregate"`          // min, last, mean, prod, sum
	Clip      *float64 `mapstructure:"clip" signed:"true"` // min(r − clip, 0) per step
	Delta     bool     `mapstructure:"delta"`              // r_t − r_{t−1}
}

// Normalization of one objective: (r − mean) / std; running estimates them
// (per route), freeze_after stops estimating after that many scores.
type Normalization struct {
	Mean        float64 `mapstructure:"mean" signed:"true"`
	Std         float64 `mapstructure:"std"`
	Running     bool    `mapstructure:"running"`
	FreezeAfter int     `mapstructure:"freeze_after"`
}

// Transform of one objective: identity, clip (min, max) or log_sigmoid
// (reference).
type Transform struct {
	Kind              string   `mapstructure:"kind"`
	Reference         float64  `mapstructure:"reference" signed:"true"`
	ReferenceQuantile *float64 `mapstructure:"reference_quantile"` // per prompt: that quantile of its candidates' scores
	Min               float64  `mapstructure:"min" signed:"true"`
	Max               float64  `mapstructure:"max" signed:"true"`
}

// RulesReward tunes the rule objectives.
type RulesReward struct {
	NGram    int                 `mapstructure:"ngram" unset:"true"`
	Regex    string              `mapstructure:"regex"`
	Keywords map[string][]string `mapstructure:"keywords"` // objective name (lower case) -> patterns
}

// Judge modes.
const (
	JudgeYesNo        = "yes_no"
	JudgeRating       = "rating"
	JudgeCritique     = "critique"
	JudgeDensityRatio = "density_ratio"
)

// JudgeReward is an LLM judge (mode yes_no: the log-odds of Yes; rating: a
// 1–10 rating read from the text, for backends without logprobs; critique:
// a critique, then a 1–10 score) or a density ratio of two backends (mode
// density_ratio).
type JudgeReward struct {
	Mode        string `mapstructure:"mode"`
	Backend     string `mapstructure:"backend"`
	Model       string `mapstructure:"model"`
	Question    string `mapstructure:"question"`
	WeakBackend string `mapstructure:"weak_backend"`
	WeakModel   string `mapstructure:"weak_model"`
	// Floor is the logprob yes_no gives the missing word when the judge's
	// alternatives list only one of Yes and No (default: the smallest
	// listed logprob, a bound).
	Floor *float64 `mapstructure:"floor" signed:"true"`
	// Format renders chats to raw prompts for density_ratio backends that
	// score raw text only (vLLM); PerToken divides by the answer's tokens.
	Format   string `mapstructure:"format"`
	PerToken bool   `mapstructure:"per_token"`
	// MaxTokens bounds what a critique judge writes; MaxCritique is how
	// many characters of its critique the report keeps.
	MaxTokens   int `mapstructure:"max_tokens" unset:"true"`
	MaxCritique int `mapstructure:"max_critique" unset:"true"`
}

// RemoteReward is a KServe v2 (Triton) model.
type RemoteReward struct {
	URL     string        `mapstructure:"url"`
	Model   string        `mapstructure:"model"`
	Version string        `mapstructure:"version"`
	Input   string        `mapstructure:"input"`
	Output  string        `mapstructure:"output"`
	Format  string        `mapstructure:"format"`
	Timeout time.Duration `mapstructure:"timeout" unset:"true"`
}

// EnsembleReward combines other rewards.
type EnsembleReward struct {
	Members   []string `mapstructure:"members"`
	Aggregate string   `mapstructure:"aggregate"` // mean, min, mean_minus_std, mean_minus_var
	Lambda    float64  `mapstructure:"lambda"`
}

// ONNXModel is a reward model run through ONNX Runtime.
type ONNXModel struct {
	Path        string        `mapstructure:"path"`
	Tokenizer   string        `mapstructure:"tokenizer"`
	Format      string        `mapstructure:"format"`
	MaxLength   int           `mapstructure:"max_length" unset:"true"`
	Truncation  string        `mapstructure:"truncation"` // left or right
	PadID       int           `mapstructure:"pad_id"`
	MaxBatch    int           `mapstructure:"max_batch" unset:"true"`
	MaxWait     time.Duration `mapstructure:"max_wait"`
	Provider    string        `mapstructure:"provider"` // cpu or cuda
	DeviceID    int           `mapstructure:"device_id"`
	MemoryLimit int64         `mapstructure:"memory_limit"` // bytes, cuda
	Fallback    string        `mapstructure:"fallback"`     // "cpu": use CPU when CUDA cannot load
	Output      string        `mapstructure:"output"`       // the scores' output; empty: logits, rewards or score, else the first
	GateOutput  string        `mapstructure:"gate_output"`  // a gated model's coefficients output
}

// Server configures the HTTP gateway.
type Server struct {
	Listen          string        `mapstructure:"listen"`
	RequestTimeout  time.Duration `mapstructure:"request_timeout"`
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	MaxBodyBytes    int           `mapstructure:"max_body_bytes"`
	MaxInflight     int           `mapstructure:"max_inflight"`
	MaxQueue        int           `mapstructure:"max_queue"`
	QueueTimeout    time.Duration `mapstructure:"queue_timeout"`
	MaxN            int           `mapstructure:"max_n"`
	MaxTokens       int           `mapstructure:"max_tokens"`
	MaxMessages     int           `mapstructure:"max_messages"`
	MaxSamples      int           `mapstructure:"max_samples"` // most samples one steered request may draw
	MaxHeaderBytes  int           `mapstructure:"max_header_bytes"`
	DrainDelay      time.Duration `mapstructure:"drain_delay"` // /readyz is 503 this long before the listener closes
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text, json
	// AccessSample is the share of requests written to the access log.
	AccessSample float64 `mapstructure:"access_sample"`
}

// Backend types.
const (
	TypeReference = "reference"
	TypeOllama    = "ollama"
	TypeOpenAI    = "openai"
)

// Backend configures one LLM server.
type Backend struct {
	Type           string        `mapstructure:"type"`
	URL            string        `mapstructure:"url"`
	APIKey         string        `mapstructure:"api_key" secret:"true"`
	Flavour        string        `mapstructure:"flavour"` // openai type: openai, vllm, llamacpp
	Timeout        time.Duration `mapstructure:"timeout" unset:"true"`
	MaxConcurrency int           `mapstructure:"max_concurrency" unset:"true"`
	MaxQueue       *int          `mapstructure:"max_queue"`            // calls waiting for a turn, more get 503 (0: none wait)
	QueueTimeout   time.Duration `mapstructure:"queue_timeout"`        // how long one waits
	Retries        int           `mapstructure:"retries"`              // extra attempts on connection errors, 5xx and overload
	Backoff        time.Duration `mapstructure:"backoff" unset:"true"` // before the first retry; doubles after each
	// Circuit breaking: after breaker_failures failures in a row the
	// backend is skipped for breaker_cooldown (0 failures: off).
	BreakerFailures int           `mapstructure:"breaker_failures"`
	BreakerCooldown time.Duration `mapstructure:"breaker_cooldown" unset:"true"`
	HealthInterval  time.Duration `mapstructure:"health_interval"` // active checks; 0: off
	Discover        bool          `mapstructure:"discover"`        // route every model the backend lists
	// MaxResponseBytes bounds a non-streamed answer's body (and one
	// streamed event); more is a backend error.
	MaxResponseBytes int `mapstructure:"max_response_bytes" unset:"true"`
	// Reference backend only: simulated serving speed and length cap.
	TokenDelay      time.Duration `mapstructure:"token_delay"`
	FirstTokenDelay time.Duration `mapstructure:"first_token_delay"`
	MaxTokens       int           `mapstructure:"max_tokens" unset:"true"`
}

// Model routes a public model name to a backend.
type Model struct {
	Name    string   `mapstructure:"name"`
	Backend string   `mapstructure:"backend"`
	Target  string   `mapstructure:"model"` // the backend's name for it; default Name
	Aliases []string `mapstructure:"aliases"`
	// Fallbacks serve the route, in order, when the backend fails
	// (connection errors, 5xx, overload), never after a stream has begun.
	Fallbacks []Fallback `mapstructure:"fallbacks"`
	// Steering holds the route's default steering parameters, with the same
	// keys as a request's "steering" field.
	Steering map[string]any `mapstructure:"steering"`
}

// Fallback is another backend for a route, with its name for the model
// (default: the route's).
type Fallback struct {
	Backend string `mapstructure:"backend"`
	Target  string `mapstructure:"model"`
}

// Defaults returns a Config holding every default.
func Defaults() Config {
	return Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			RequestTimeout:  5 * time.Minute,
			ReadTimeout:     30 * time.Second,
			IdleTimeout:     2 * time.Minute,
			ShutdownTimeout: 30 * time.Second,
			MaxBodyBytes:    4 << 20,
			MaxInflight:     1024,
			MaxQueue:        1024,
			QueueTimeout:    5 * time.Second,
			MaxN:            16,
			MaxTokens:       16384,
			MaxMessages:     1024,
			MaxSamples:      32,
			MaxHeaderBytes:  16 << 10,
			DrainDelay:      0,
		},
		Log: Log{Level: "info", Format: "text"},
		Cache: Cache{MemoryBytes: 256 << 20,
			Redis: Redis{Prefix: "steergate:", DialTimeout: time.Second, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
				ReadSlack: 5 * time.Millisecond, WriteQueue: 1024, PoolSize: 64},
			Responses: ResponseCache{Enabled: true, TTL: time.Hour, MaxEntryBytes: 1 << 20, MaxTTL: 24 * time.Hour}},
		Preferences: Preferences{MaxWeight: 10, LearningRate: 0.5, L2: 0.01, LogTTL: 24 * time.Hour, MemoryUsers: 100000, MemoryResponses: 100000},
	}
}

// rewardDefaults fills a reward's unset fields.
func rewardDefaults(r *Reward) {
	if r.CacheTTL == 0 {
		r.CacheTTL = time.Hour
	}
	if r.Type == RewardRules && r.Rules.NGram == 0 {
		r.Rules.NGram = 3
	}
	if r.Type == RewardEnsemble && r.Ensemble.Aggregate == "" {
		r.Ensemble.Aggregate = "mean"
	}
	if r.Type == RewardJudge && r.Judge.Mode == "" {
		r.Judge.Mode = "yes_no"
	}
	if r.Type == RewardJudge && r.Judge.Mode == JudgeCritique {
		if r.Judge.MaxTokens == 0 {
			r.Judge.MaxTokens = 512
		}
		if r.Judge.MaxCritique == 0 {
			r.Judge.MaxCritique = 1000
		}
	}
	if r.Type == RewardONNXPRM {
		if r.PRM.Delimiter == "" {
			r.PRM.Delimiter = "\n\n"
		}
		if r.PRM.Aggregate == "" {
			r.PRM.Aggregate = "min"
		}
		if r.PRM.Positive == nil {
			one := 1
			r.PRM.Positive = &one
		}
	}
	if r.Type == RewardRemote && r.Remote.Timeout == 0 {
		r.Remote.Timeout = 10 * time.Second
	}
	if r.Type == RewardONNX || r.Type == RewardONNXARM || r.Type == RewardONNXPRM {
		r.Model.Fill()
	}
}

// ONNXDefaults are the defaults of an ONNX reward model, here and in
// package onnx alike.
var ONNXDefaults = ONNXModel{MaxLength: 512, Truncation: "left", MaxBatch: 16, Provider: "cpu", Format: "plain"}

// Fill sets m's unset fields to ONNXDefaults.
func (m *ONNXModel) Fill() {
	d := ONNXDefaults
	if m.MaxLength == 0 {
		m.MaxLength = d.MaxLength
	}
	if m.Truncation == "" {
		m.Truncation = d.Truncation
	}
	if m.MaxBatch == 0 {
		m.MaxBatch = d.MaxBatch
	}
	if m.Provider == "" {
		m.Provider = d.Provider
	}
	if m.Format == "" {
		m.Format = d.Format
	}
}

// CacheOn reports whether the reward's score cache is on.
func (r Reward) CacheOn() bool { return r.Cache == nil || *r.Cache }

// backendDefaults fills a backend's unset fields.
func backendDefaults(b *Backend) {
	if b.Timeout == 0 {
		b.Timeout = 5 * time.Minute
	}
	if b.MaxConcurrency == 0 {
		b.MaxConcurrency = 64
	}
	if b.MaxQueue == nil {
		q := 1024
		b.MaxQueue = &q
	}
	if b.Backoff == 0 {
		b.Backoff = 100 * time.Millisecond
	}
	if b.BreakerCooldown == 0 {
		b.BreakerCooldown = 10 * time.Second
	}
	if b.Type == TypeOpenAI && b.Flavour == "" {
		b.Flavour = "openai"
	}
	if b.Type == TypeReference && b.MaxTokens == 0 {
		b.MaxTokens = 256
	}
	if b.MaxResponseBytes == 0 {
		b.MaxResponseBytes = 32 << 20
	}
}
