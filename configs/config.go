package configs

import (
	"time"
)

// Config is the whole configuration.
type Config struct {
	Server   Server             `mapstructure:"server"`
	Log      Log                `mapstructure:"log"`
	Backends map[string]Backend `mapstructure:"backends"`
	Models   []Model            `mapstructure:"models"`
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
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text, json
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
	Timeout        time.Duration `mapstructure:"timeout"`
	MaxConcurrency int           `mapstructure:"max_concurrency"`
	Discover       bool          `mapstructure:"discover"` // route every model the backend lists
	// Reference backend only: simulated serving speed and length cap.
	TokenDelay      time.Duration `mapstructure:"token_delay"`
	FirstTokenDelay time.Duration `mapstructure:"first_token_delay"`
	MaxTokens       int           `mapstructure:"max_tokens"`
}

// Model routes a public model name to a backend.
type Model struct {
	Name    string   `mapstructure:"name"`
	Backend string   `mapstructure:"backend"`
	Target  string   `mapstructure:"model"` // the backend's name for it; default Name
	Aliases []string `mapstructure:"aliases"`
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
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// backendDefaults fills a backend's unset fields.
func backendDefaults(b *Backend) {
	if b.Timeout == 0 {
		b.Timeout = 5 * time.Minute
	}
	if b.MaxConcurrency == 0 {
		b.MaxConcurrency = 64
	}
	if b.Type == TypeOpenAI && b.Flavour == "" {
		b.Flavour = "openai"
	}
}
