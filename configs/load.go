package configs

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// DefaultFile is the config served when none is given.
const DefaultFile = "configs/default.yaml"

// MaxWeight bounds every objective weight, a user's included; it is
// steering.MaxWeight, which this package may not import (a test holds the
// two equal).
const MaxWeight = 1e6

// Errors is a list of "file:key: message" problems.
type Errors []string

func (e Errors) Error() string { return strings.Join(e, "\n") }

// Load reads, expands, overrides from the environment, decodes and validates
// the config at path. A path under configs/ that does not exist on disk is
// read from the copy embedded in the binary.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && strings.HasPrefix(path, "configs/") {
		if embedded, eerr := files.ReadFile(strings.TrimPrefix(path, "configs/")); eerr == nil {
			data, err = embedded, nil
		}
	}
	if err != nil {
		return nil, Errors{fmt.Sprintf("%s: cannot read config: %v", path, err)}
	}
	return Parse(path, data)
}

// expand replaces ${VAR} and ${VAR:-default} with the environment's
// values in the parsed file's scalars, keys included, not in its text: a
// value is then the value whole (a # or a ": " in it, a line break, cut
// nothing and add no key), and a comment expands nothing. A plain scalar
// is read again for its kind after (port: ${PORT} is a number), a quoted
// one stays text.
func expand(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = expandRefs(n.Value)
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = "" // resolved again from the value
		}
	}
	for _, c := range n.Content {
		expand(c)
	}
}

// expandText is expand on the file's text.
func expandText(data []byte) []byte { return []byte(expandRefs(string(data))) }

// expandRefs replaces each ${VAR} and ${VAR:-default} in s (a variable
// set but empty takes the default). A default runs to the brace that
// closes its reference, so it may hold braces in pairs ({"a": 1}) and
// references of its own (${A:-${B}}), as in a shell. Text that is no
// reference stays as it is.
func expandRefs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		v, n, ok := envRef(s[i:])
		if !ok {
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(v)
		s = s[i+n:]
	}
}

// envRef reads the reference that s starts with: what it stands for and
// its length; ok is false when s starts with none.
func envRef(s string) (value string, n int, ok bool) {
	j := 2
	for j < len(s) && (s[j] == '_' || 'A' <= s[j] && s[j] <= 'Z' || 'a' <= s[j] && s[j] <= 'z' || j > 2 && '0' <= s[j] && s[j] <= '9') {
		j++
	}
	if j == 2 {
		return "", 0, false
	}
	name, rest := s[2:j], s[j:]
	if strings.HasPrefix(rest, "}") {
		return os.Getenv(name), j + 1, true
	}
	if !strings.HasPrefix(rest, ":-") {
		return "", 0, false
	}
	// The default ends at the brace that closes the reference; with
	// braces that never pair up (${X:-{}), at the first closing brace, as
	// a shell reads it.
	end, first, depth := -1, -1, 0
	for k := j + 2; k < len(s) && end < 0; k++ {
		switch s[k] {
		case '{':
			depth++
		case '}':
			if first < 0 {
				first = k
			}
			if depth == 0 {
				end = k
			}
			depth--
		}
	}
	if end < 0 {
		end = first
	}
	if end < 0 {
		return "", 0, false
	}
	if v := os.Getenv(name); v != "" {
		return v, end + 1, true
	}
	return expandRefs(s[j+2 : end]), end + 1, true
}

// documents counts the YAML documents in data that hold something (at
// most 2: enough to know); a --- with nothing after it starts none.
func documents(data []byte) int {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for n < 2 {
		var doc yaml.Node
		if dec.Decode(&doc) != nil {
			break
		}
		if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].ShortTag() == "!!null" && doc.Content[0].Value == "" {
			continue
		}
		n++
	}
	return n
}

// Parse is Load for bytes already read; file names the source in errors.
func Parse(file string, data []byte) (*Config, error) {
	cfg, tc, err := decodeTree(file, data)
	if err != nil {
		return nil, err
	}
	errs := append(tc.errs, tc.misplaced...)
	if err := cfg.Validate(file); err != nil {
		// A key the tree check refused was decoded as its default; what
		// Validate says of it would be about a value nobody wrote.
		for _, e := range err.(Errors) {
			if !tc.about(e) {
				errs = append(errs, tc.reword(e))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// rewardSections are the reward types each type-specific section is
// read for.
var rewardSections = map[string][]string{
	"rules": {RewardRules}, "judge": {RewardJudge}, "remote": {RewardRemote}, "ensemble": {RewardEnsemble},
	"onnx": {RewardONNX, RewardONNXARM, RewardONNXPRM}, "prm": {RewardONNXPRM}, "lexicon": {RewardLexicon}, "value": {RewardValue},
}

// otherTypesSections refuses a reward's section that its type does not
// read (rules: under a judge reward), which would otherwise be decoded
// and ignored, as a backend's keys of another type are refused.
func otherTypesSections(file string, raw map[string]any) Errors {
	rewards, _ := raw["rewards"].(map[string]any)
	var errs Errors
	for _, n := range slices.Sorted(maps.Keys(rewards)) {
		r, _ := rewards[n].(map[string]any)
		typ, _ := r["type"].(string)
		for _, sec := range slices.Sorted(maps.Keys(r)) {
			if types, ok := rewardSections[sec]; ok && typ != "" && !slices.Contains(types, typ) {
				errs = append(errs, fmt.Sprintf("%s:rewards.%s.%s: applies to %s rewards, not %s", file, n, sec, strings.Join(types, ", "), typ))
			}
		}
	}
	return errs
}

// decode reads, expands, overrides from the environment and decodes a
// config, filling defaults, without validating values.
func decode(file string, data []byte) (*Config, error) {
	cfg, tc, err := decodeTree(file, data)
	if err == nil && len(tc.errs) > 0 {
		err = tc.errs
	}
	return cfg, err
}

// decodeTree is decode that also returns what the tree check found: keys
// it refused are left at their defaults in the Config, so that the rest
// can still be validated.
func decodeTree(file string, data []byte) (*Config, *treeCheck, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// An unquoted ${VAR} inside {…} or […] is no YAML until expanded:
		// such a file is expanded in its text, as a shell would.
		data = expandText(data)
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, nil, Errors{fmt.Sprintf("%s: invalid YAML: %v", file, err)}
		}
	}
	expand(&doc)
	var raw map[string]any
	if len(doc.Content) > 0 {
		if err := doc.Decode(&raw); err != nil {
			return nil, nil, Errors{fmt.Sprintf("%s: invalid YAML: %v", file, err)}
		}
	}
	if documents(data) > 1 {
		// yaml.Unmarshal reads the first and drops the rest unread.
		return nil, nil, Errors{fmt.Sprintf("%s: holds more than one YAML document (a line ---): a config is one document", file)}
	}
	if raw == nil {
		raw = map[string]any{}
	}
	env, errs := applyEnv(file, raw, environ())
	texts := numberTexts(&doc)
	for path := range env {
		delete(texts, path) // a variable's value replaced what the file wrote
	}
	tc := &treeCheck{file: file, env: env, errs: errs, texts: texts}
	tc.value("", raw, reflect.TypeFor[Config](), rules{})
	tc.misplaced = otherTypesSections(file, raw)
	// Names may hold dots (a backend gpt-4.1, an objective a.b): viper's
	// key paths split at its delimiter, so it is one no YAML key holds.
	v := viper.NewWithOptions(viper.KeyDelimiter("\x00"))
	if err := v.MergeConfigMap(raw); err != nil {
		return nil, nil, Errors{fmt.Sprintf("%s: %v", file, err)}
	}
	cfg := Defaults()
	if err := v.Unmarshal(&cfg, viper.DecodeHook(mapstructure.StringToTimeDurationHookFunc())); err != nil {
		return nil, nil, decodeErrors(file, err)
	}
	for name, b := range cfg.Backends {
		backendDefaults(&b)
		cfg.Backends[name] = b
	}
	// Every config can steer: with no rewards configured, the built-in
	// rules reward is there as "default".
	if len(cfg.Rewards) == 0 {
		cfg.Rewards = map[string]Reward{"default": {Type: RewardRules}}
	}
	for name, r := range cfg.Rewards {
		rewardDefaults(&r)
		cfg.Rewards[name] = r
	}
	for i := range cfg.Auth.Keys {
		if cfg.Auth.Keys[i].Role == "" {
			cfg.Auth.Keys[i].Role = "user" // as the effective config shows it
		}
	}
	for i := range cfg.Models {
		if cfg.Models[i].Target == "" {
			cfg.Models[i].Target = cfg.Models[i].Name
		}
		for j := range cfg.Models[i].Fallbacks {
			if cfg.Models[i].Fallbacks[j].Target == "" {
				cfg.Models[i].Fallbacks[j].Target = cfg.Models[i].Target
			}
		}
	}
	for i := range cfg.Experiments {
		experimentDefaults(&cfg.Experiments[i])
	}
	cfg.File = file
	return &cfg, tc, nil
}

func experimentDefaults(e *Experiment) {
	if e.Unit == "" {
		e.Unit = "user"
	}
	if e.State == "" {
		e.State = "running"
	}
	if e.Allocation == "" {
		e.Allocation = "fixed"
	}
	if e.Alpha == 0 {
		e.Alpha = 0.05
	}
	if e.MixingSD == 0 {
		e.MixingSD = 0.1
	}
	if e.Outcome.Type == "reward" && e.Outcome.Share == 0 {
		e.Outcome.Share = 1
	}
	if e.Control == "" && len(e.Arms) > 0 {
		e.Control = e.Arms[0].Name
	}
	for i := range e.Arms {
		if e.Arms[i].Weight == 0 {
			e.Arms[i].Weight = 1
		}
	}
}

// decodeErrors turns mapstructure's messages into file:key: lines.
func decodeErrors(file string, err error) error {
	var out Errors
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		// mapstructure: "'server.max_n' expected type 'int', got unconvertible type 'string'..."
		if strings.HasPrefix(line, "'") {
			if key, msg, ok := strings.Cut(line[1:], "' "); ok {
				out = append(out, fmt.Sprintf("%s:%s: %s", file, key, msg))
				continue
			}
		}
		out = append(out, fmt.Sprintf("%s: %s", file, line))
	}
	if len(out) == 0 {
		out = Errors{fmt.Sprintf("%s: %v", file, err)}
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return name
}

// Validate checks values and references; errors name file and key.
func (c *Config) Validate(file string) error {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s:%s: %s", file, key, fmt.Sprintf(format, args...)))
	}
	if err := hostPort(c.Server.Listen, true); err != nil {
		bad("server.listen", "%v", err)
	}
	for key, d := range inOrder(map[string]time.Duration{
		"server.request_timeout": c.Server.RequestTimeout, "server.read_timeout": c.Server.ReadTimeout,
		"server.idle_timeout": c.Server.IdleTimeout, "server.shutdown_timeout": c.Server.ShutdownTimeout,
		"server.queue_timeout": c.Server.QueueTimeout,
	}) {
		if d <= 0 {
			bad(key, "must be a positive duration such as 30s")
		}
	}
	for key, n := range inOrder(map[string]int{
		"server.max_body_bytes": c.Server.MaxBodyBytes, "server.max_inflight": c.Server.MaxInflight,
		"server.max_n": c.Server.MaxN, "server.max_tokens": c.Server.MaxTokens, "server.max_messages": c.Server.MaxMessages,
		"server.max_samples": c.Server.MaxSamples,
	}) {
		if n < 1 {
			bad(key, "must be at least 1")
		}
	}
	// Each connection holds a read buffer of this size.
	if h := c.Server.MaxHeaderBytes; h < 4<<10 || h > 1<<20 {
		bad("server.max_header_bytes", "must be between 4096 and 1048576")
	}
	if c.Cache.MemoryBytes < 0 {
		bad("cache.memory_bytes", "must not be negative")
	}
	if r := c.Cache.Redis; len(r.Addrs) > 0 {
		for i, a := range r.Addrs {
			if err := hostPort(a, false); err != nil {
				bad(fmt.Sprintf("cache.redis.addrs[%d]", i), "%v", err)
			}
		}
		for key, d := range inOrder(map[string]time.Duration{"dial_timeout": r.DialTimeout, "read_timeout": r.ReadTimeout,
			"write_timeout": r.WriteTimeout, "read_slack": r.ReadSlack}) {
			if d <= 0 {
				bad("cache.redis."+key, "must be a positive duration")
			}
		}
		if r.ReadTimeout > 0 && r.ReadSlack > r.ReadTimeout {
			bad("cache.redis.read_slack", "must be at most read_timeout (%s)", r.ReadTimeout)
		}
		// Each is a size of something the gateway makes (a connection
		// pool, a queue of writes): bounded, so that no value check-config
		// passes fails at start-up.
		if r.PoolSize < 1 || r.PoolSize > 10000 {
			bad("cache.redis.pool_size", "must be between 1 and 10000")
		}
		if r.MinIdle > r.PoolSize {
			bad("cache.redis.min_idle", "must be at most pool_size (%d)", r.PoolSize)
		}
		if r.WriteQueue < 1 || r.WriteQueue > 1<<20 {
			bad("cache.redis.write_queue", "must be between 1 and 1048576")
		}
		if r.DB != 0 && (r.Cluster || len(r.Addrs) > 1 && r.MasterName == "") {
			bad("cache.redis.db", "a Redis Cluster has database 0 only")
		}
	} else if c.Cache.Redis.MasterName != "" {
		bad("cache.redis.addrs", "master_name needs the Sentinel addresses in addrs")
	}
	if c.Cache.Responses.TTL <= 0 {
		bad("cache.responses.ttl", "must be a positive duration")
	}
	if c.Cache.Responses.MaxTTL < time.Second {
		bad("cache.responses.max_ttl", "must be at least 1s (a request's ttl_s is whole seconds)")
	}
	if c.Cache.Responses.MaxEntryBytes < 1 {
		bad("cache.responses.max_entry_bytes", "must be at least 1")
	}
	seenKeys := map[string]string{}
	for i, k := range c.Auth.Keys {
		at := fmt.Sprintf("auth.keys[%d]", i)
		if len(k.Hash) != 64 || strings.Trim(strings.ToLower(k.Hash), "0123456789abcdef") != "" {
			bad(at+".hash", "must be the hex SHA-256 of the key (64 hex digits; steergate hash-key prints it), not the key itself")
		} else if prev, dup := seenKeys[strings.ToLower(k.Hash)]; dup {
			bad(at+".hash", "is the same key as %s", prev)
		} else {
			seenKeys[strings.ToLower(k.Hash)] = at
		}
		if k.Tenant == "" {
			bad(at+".tenant", "is required")
		}
		if k.Role != "" && k.Role != "user" && k.Role != "admin" {
			bad(at+".role", "must be user or admin; got %q", k.Role)
		}
	}
	if c.Auth.Redis && len(c.Cache.Redis.Addrs) == 0 {
		bad("auth.redis", "looks keys up in Redis, which needs cache.redis.addrs")
	}
	p := c.Preferences
	if p.MaxWeight <= 0 || math.IsInf(p.MaxWeight, 0) || math.IsNaN(p.MaxWeight) || p.MaxWeight > MaxWeight {
		bad("preferences.max_weight", "must be above 0 and at most %g (the bound of every weight)", float64(MaxWeight))
	}
	if p.LearningRate <= 0 || p.LearningRate > 10 {
		bad("preferences.learning_rate", "must be in (0, 10]")
	}
	if p.L2 < 0 || p.L2 >= 1 {
		bad("preferences.l2", "must be in [0, 1)")
	}
	if p.LogTTL <= 0 {
		bad("preferences.log_ttl", "must be positive")
	}
	if p.MemoryUsers < 1 {
		bad("preferences.memory_users", "must be at least 1")
	}
	if p.MemoryResponses < 1 {
		bad("preferences.memory_responses", "must be at least 1")
	}
	c.validateExperiments(bad)
	if c.Server.MaxQueue < 0 {
		bad("server.max_queue", "must not be negative")
	}
	if c.Server.MaxN > 128 {
		bad("server.max_n", "must be at most 128")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	if c.Log.AccessSample < 0 || c.Log.AccessSample > 1 {
		bad("log.access_sample", "must be between 0 and 1")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "must be text or json; got %q", c.Log.Format)
	}
	if len(c.Backends) == 0 {
		bad("backends", "at least one backend is required")
	}
	names := make([]string, 0, len(c.Backends))
	for n := range c.Backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := c.Backends[n]
		k := "backends." + n
		switch b.Type {
		case TypeReference:
			// It runs in the gateway: nothing to call, list or log in to.
			for key, set := range inOrder(map[string]bool{"url": b.URL != "", "api_key": b.APIKey != "", "discover": b.Discover}) {
				if set {
					bad(k+"."+key, "does not apply to a reference backend")
				}
			}
		case TypeOllama, TypeOpenAI:
			if b.URL == "" {
				bad(k+".url", "is required for an %s backend", b.Type)
			} else if strings.Contains(b.URL, ":/") && !strings.Contains(b.URL, "://") {
				bad(k+".url", "is not a valid URL: %q (a scheme is written http://)", hidePassword(b.URL))
			} else if b.Type == TypeOpenAI && !strings.Contains(b.URL, "://") {
				// Ollama's own client takes a bare host:port (OLLAMA_HOST);
				// an OpenAI base URL has its scheme.
				bad(k+".url", "must be an http:// or https:// URL; got %q", hidePassword(b.URL))
			} else if err := httpURL(withScheme(b.URL)); err != nil {
				bad(k+".url", "%v", strings.Replace(err.Error(), hidePassword(withScheme(b.URL)), hidePassword(b.URL), 1))
			}
		default:
			bad(k+".type", "must be one of reference, ollama, openai; got %q", b.Type)
		}
		if b.Type == TypeOpenAI {
			switch b.Flavour {
			case "openai", "vllm", "llamacpp":
			default:
				bad(k+".flavour", "must be one of openai, vllm, llamacpp; got %q", b.Flavour)
			}
		} else if b.Flavour != "" {
			bad(k+".flavour", "only applies to openai backends")
		}
		// Negatives and written zeros of keys with defaults were refused
		// before the decode (treeCheck).
		if b.Type != TypeReference {
			for key, set := range inOrder(map[string]bool{"token_delay": b.TokenDelay != 0, "first_token_delay": b.FirstTokenDelay != 0, "max_tokens": b.MaxTokens != 0}) {
				if set {
					bad(k+"."+key, "only applies to reference backends")
				}
			}
		}
	}
	c.validateRewards(bad)
	seen := map[string]string{}
	for i, m := range c.Models {
		k := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			bad(k+".name", "is required")
		}
		if _, ok := c.Backends[m.Backend]; !ok {
			bad(k+".backend", "names backend %q, which is not defined under backends", m.Backend)
		}
		if b, ok := c.Backends[m.Backend]; ok && b.Type == TypeReference && m.Target != "reference" && m.Target != "reference:latest" {
			bad(k+".model", "the reference backend serves the model \"reference\" only; write model: reference (got %q)", m.Target)
		}
		for j, f := range m.Fallbacks {
			if b, ok := c.Backends[f.Backend]; !ok {
				bad(fmt.Sprintf("%s.fallbacks[%d].backend", k, j), "names backend %q, which is not defined under backends", f.Backend)
			} else if b.Type == TypeReference && f.Target != "reference" && f.Target != "reference:latest" {
				bad(fmt.Sprintf("%s.fallbacks[%d].model", k, j), "the reference backend serves the model \"reference\" only; write model: reference (got %q)", f.Target)
			}
		}
		for j, a := range m.Aliases {
			if a == "" {
				bad(fmt.Sprintf("%s.aliases[%d]", k, j), "is empty")
			}
		}
		for _, n := range append([]string{m.Name}, m.Aliases...) {
			if prev, dup := seen[n]; dup && n != "" {
				bad(k, "model name %q is already used by %s", n, prev)
			}
			seen[n] = k
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// inOrder yields m's entries by key, so that messages come in one order.
func inOrder[V any](m map[string]V) iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// hostPort checks a host:port to dial or (listen) to listen on: the port
// a number of 1 to 65535, or 0 to listen on any free one.
func hostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port: %v", err)
	}
	least := 1
	if listen {
		least = 0
	}
	// Digits only, as written: Atoi would take +80, -0 and 080.
	n, err := strconv.Atoi(port)
	if err != nil || strings.Trim(port, "0123456789") != "" || len(port) > 1 && port[0] == '0' || n < least || n > 65535 {
		return fmt.Errorf("must be host:port with a port of %d to 65535; got %q", least, s)
	}
	if strings.ContainsAny(host, " \t") {
		return fmt.Errorf("has a space in its host: %q", s)
	}
	return nil
}

// httpURL checks a URL the gateway calls: http or https, a host, a port
// that can be dialled, and no query or fragment, which the paths the
// gateway appends would not keep. A password in it is left out of the
// message.
func httpURL(s string) error {
	shown := hidePassword(s)
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL whole
		}
		return fmt.Errorf("is not a valid URL: %v: %q", err, shown)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http:// or https:// URL; got %q", shown)
	case u.Hostname() == "":
		return fmt.Errorf("has no host: %q", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("must have no query or fragment (the gateway appends its paths to it): %q", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || p[0] == '0' || n < 1 || n > 65535 {
			return fmt.Errorf("has a port outside 1 to 65535, written as digits with no leading zero: %q", shown)
		}
	}
	return nil
}

// hidePassword writes a URL's password as xxxxx, as the effective config
// does, even in a URL that does not parse.
func hidePassword(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	at := strings.LastIndex(rest[:strings.IndexAny(rest+"/", "/?#")], "@")
	if at < 0 {
		return s
	}
	user, _, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return s
	}
	return s[:i+3] + user + ":xxxxx" + rest[at:]
}

// withScheme adds http:// to a bare host:port, as Ollama's own client does
// for OLLAMA_HOST.
func withScheme(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	return "http://" + s
}

// NormalizeURL returns a backend URL with a scheme.
func NormalizeURL(s string) string { return withScheme(s) }

func (c *Config) validateRewards(bad func(key, format string, args ...any)) {
	for _, n := range slices.Sorted(maps.Keys(c.Rewards)) {
		r := c.Rewards[n]
		k := "rewards." + n
		for o, w := range inOrder(r.Weights) {
			if math.Abs(w) > MaxWeight {
				bad(k+".weights."+o, "must be at most %g in magnitude (the bound of every weight)", float64(MaxWeight))
			}
		}
		for obj, norm := range inOrder(r.Normalize) {
			if norm.Std <= 0 {
				bad(k+".normalize."+obj+".std", "must be positive")
			}
			if norm.FreezeAfter < 0 || norm.FreezeAfter > 0 && !norm.Running {
				bad(k+".normalize."+obj+".freeze_after", "must not be negative, and applies to running normalization only")
			}
		}
		for obj, t := range inOrder(r.Transform) {
			if q := t.ReferenceQuantile; q != nil && (*q < 0 || *q > 1 || t.Kind != "log_sigmoid") {
				bad(k+".transform."+obj+".reference_quantile", "must be in [0, 1], for log_sigmoid")
			}
			switch t.Kind {
			case "identity", "log_sigmoid":
			case "clip":
				if t.Min >= t.Max {
					bad(k+".transform."+obj+".max", "clip needs min < max")
				}
			default:
				bad(k+".transform."+obj+".kind", "must be identity, clip or log_sigmoid; got %q", t.Kind)
			}
		}
		switch r.Type {
		case RewardRules:
		case RewardJudge:
			j := r.Judge
			if _, ok := c.Backends[j.Backend]; !ok {
				bad(k+".judge.backend", "names backend %q, which is not defined under backends", j.Backend)
			}
			if j.Model == "" {
				bad(k+".judge.model", "is required")
			}
			if j.Floor != nil && (j.Mode != JudgeYesNo || *j.Floor > 0 || math.IsNaN(*j.Floor) || math.IsInf(*j.Floor, 0)) {
				bad(k+".judge.floor", "is a logprob (finite, at most 0) and applies to yes_no only")
			}
			if j.Mode != JudgeCritique {
				for key, set := range inOrder(map[string]bool{"max_tokens": j.MaxTokens != 0, "max_critique": j.MaxCritique != 0}) {
					if set {
						bad(k+".judge."+key, "applies to critique only")
					}
				}
			} else if j.MaxTokens < 16 {
				bad(k+".judge.max_tokens", "must be at least 16 (a critique and a score)")
			}
			if b, ok := c.Backends[j.Backend]; ok && j.Mode == JudgeCritique && b.Type == TypeReference {
				most := cmp.Or(b.MaxTokens, 256) // the reference backend's documented default cap
				if most < j.MaxTokens {
					bad(k+".judge.backend", "backend %s writes at most %d tokens (backends.%s.max_tokens), too few for a critique of judge.max_tokens (%d)", j.Backend, most, j.Backend, j.MaxTokens)
				}
			}
			if (j.Format != "" || j.PerToken) && j.Mode != JudgeDensityRatio {
				bad(k+".judge.format", "format and per_token apply to density_ratio only")
			}
			if j.Question != "" && j.Mode == JudgeDensityRatio {
				bad(k+".judge.question", "density_ratio asks no question")
			}
			switch j.Mode {
			case JudgeYesNo, JudgeRating, JudgeCritique:
			case JudgeDensityRatio:
				if _, ok := c.Backends[j.WeakBackend]; !ok {
					bad(k+".judge.weak_backend", "names backend %q, which is not defined under backends", j.WeakBackend)
				}
				if j.WeakModel == "" {
					bad(k+".judge.weak_model", "is required for density_ratio")
				}
			default:
				bad(k+".judge.mode", "must be yes_no, rating, critique or density_ratio; got %q", j.Mode)
			}
		case RewardRemote:
			if err := httpURL(r.Remote.URL); err != nil {
				bad(k+".remote.url", "%v", err)
			}
			if r.Remote.Model == "" {
				bad(k+".remote.model", "is required")
			}
			if len(r.Objectives) == 0 {
				bad(k+".objectives", "must name the model's outputs")
			}
		case RewardEnsemble:
			e := r.Ensemble
			if len(e.Members) < 2 {
				bad(k+".ensemble.members", "needs at least two rewards")
			}
			for i, m := range e.Members {
				if slices.Index(e.Members, m) < i {
					bad(fmt.Sprintf("%s.ensemble.members[%d]", k, i), "names %q twice", m)
				} else if _, ok := c.Rewards[m]; !ok {
					bad(fmt.Sprintf("%s.ensemble.members[%d]", k, i), "names reward %q, which is not defined under rewards", m)
				} else if c.Rewards[m].Type == RewardEnsemble {
					bad(fmt.Sprintf("%s.ensemble.members[%d]", k, i), "ensembles cannot nest")
				} else if c.Rewards[m].Model.GateOutput != "" {
					bad(fmt.Sprintf("%s.ensemble.members[%d]", k, i), "reward %q is gated: its own gates weigh its objectives, which an ensemble's aggregate would not", m)
				} else if c.Rewards[m].TokenLevel() {
					bad(fmt.Sprintf("%s.ensemble.members[%d]", k, i), "reward %q is a token-level reward (%s), not one that scores answers", m, c.Rewards[m].Type)
				}
			}
			switch e.Aggregate {
			case "mean", "min", "mean_minus_std", "mean_minus_var":
			default:
				bad(k+".ensemble.aggregate", "must be mean, min, mean_minus_std or mean_minus_var; got %q", e.Aggregate)
			}
		case RewardONNX, RewardONNXARM, RewardONNXPRM:
			m := r.Model
			if m.Path == "" {
				bad(k+".onnx.path", "is required")
			}
			if m.Tokenizer == "" {
				bad(k+".onnx.tokenizer", "is required")
			}
			if m.Truncation != "left" && m.Truncation != "right" {
				bad(k+".onnx.truncation", "must be left or right; got %q", m.Truncation)
			}
			if m.Provider != "cpu" && m.Provider != "cuda" {
				bad(k+".onnx.provider", "must be cpu or cuda; got %q", m.Provider)
			}
			if m.Fallback != "" && m.Fallback != "cpu" {
				bad(k+".onnx.fallback", "must be empty or cpu; got %q", m.Fallback)
			}
			if m.MaxLength < 2 {
				bad(k+".onnx.max_length", "must be at least 2")
			}
			if r.Type == RewardONNX && len(r.Objectives) == 0 {
				bad(k+".objectives", "must name the model's outputs")
			}
			if m.GateOutput != "" && (r.Type != RewardONNX || m.GateOutput == m.Output) {
				bad(k+".onnx.gate_output", "applies to onnx rewards, and names an output other than the scores'")
			}
			if r.Type == RewardONNXPRM {
				p := r.PRM
				if p.Separator == "" {
					bad(k+".prm.separator", "is required: the step-separator token the model scores at (e.g. the one it was trained with)")
				}
				if *p.Positive < 0 {
					bad(k+".prm.positive", "must not be negative")
				}
				if len(r.Objectives) > 1 {
					bad(k+".objectives", "a process reward has one objective; %d are named", len(r.Objectives))
				}
			}
		case RewardLexicon:
			if len(r.Lexicon) == 0 {
				bad(k+".lexicon", "needs patterns for at least one objective")
			}
			for o, ps := range inOrder(r.Lexicon) {
				if len(ps) == 0 {
					bad(k+".lexicon."+o, "needs at least one pattern")
				}
				for i, p := range ps {
					if _, err := regexp.Compile("(?i)" + p); err != nil {
						bad(fmt.Sprintf("%s.lexicon.%s[%d]", k, o, i), "is not a regular expression: %v", err)
					}
				}
			}
			for o := range inOrder(r.Weights) {
				if _, ok := r.Lexicon[o]; !ok {
					bad(k+".weights."+o, "the lexicon has no objective %q", o)
				}
			}
		case RewardValue:
			target, ok := c.Rewards[r.Value.Reward]
			switch {
			case !ok:
				bad(k+".value.reward", "names reward %q, which is not defined under rewards", r.Value.Reward)
			case target.TokenLevel():
				bad(k+".value.reward", "reward %q is token-level itself; a value function is a reward of answers", r.Value.Reward)
			}
		default:
			bad(k+".type", "must be one of rules, onnx, onnx_arm, onnx_prm, lexicon, value, judge, remote, ensemble; got %q", r.Type)
		}
	}
}

// validateExperiments checks what an experiment names; its arms' steering
// is resolved over each route where the steering is (cmd/steergate), as a
// route's own steering is.
func (c *Config) validateExperiments(bad func(key, format string, args ...any)) {
	names := map[string]bool{}
	models := map[string]string{} // public name → route
	for _, m := range c.Models {
		models[m.Name] = m.Name
		for _, a := range m.Aliases {
			models[a] = m.Name
		}
	}
	covered := map[string]string{} // model → the running experiment covering it
	for i, e := range c.Experiments {
		at := fmt.Sprintf("experiments[%d]", i)
		switch {
		case e.Name == "":
			bad(at+".name", "is required")
		case names[e.Name]:
			bad(at+".name", "another experiment is also called %q", e.Name)
		case strings.ContainsAny(e.Name, "/?#% ") || e.Name == "." || e.Name == "..":
			bad(at+".name", "must not contain '/', '?', '#', '%%' or spaces, nor be . or .. (it is a segment of a URL)")
		}
		names[e.Name] = true
		if len(e.Models) == 0 {
			bad(at+".models", "name at least one model")
		}
		for j, m := range e.Models {
			if _, ok := models[m]; !ok {
				bad(fmt.Sprintf("%s.models[%d]", at, j), "no model or alias is called %q", m)
				continue
			}
			if e.State != "running" {
				continue
			}
			for _, k := range []string{m, models[m]} {
				if other, ok := covered[k]; ok && other != e.Name {
					bad(fmt.Sprintf("%s.models[%d]", at, j), "%q is already in the running experiment %q: a request could be in two", m, other)
					break // once, whether by its name or its route's
				}
			}
			covered[m] = e.Name
		}
		if e.Unit != "user" && e.Unit != "request" {
			bad(at+".unit", "must be user or request; got %q", e.Unit)
		}
		if e.State != "running" && e.State != "stopped" {
			bad(at+".state", "must be running or stopped; got %q", e.State)
		}
		if len(e.Arms) < 2 {
			bad(at+".arms", "an experiment needs at least two arms")
		}
		arms := map[string]bool{}
		for j, a := range e.Arms {
			aat := fmt.Sprintf("%s.arms[%d]", at, j)
			switch {
			case a.Name == "":
				bad(aat+".name", "is required")
			case arms[a.Name]:
				bad(aat+".name", "another arm is also called %q", a.Name)
			}
			arms[a.Name] = true
			if !(a.Weight > 0) || a.Weight > MaxWeight {
				// Bounded, so that the arms' weights add up to a number.
				bad(aat+".weight", "must be a positive number, at most %g", float64(MaxWeight))
			}
			if _, ok := a.Steering["arm"]; ok {
				bad(aat+".steering.arm", "an arm's steering cannot force an arm")
			}
		}
		if !arms[e.Control] {
			bad(at+".control", "no arm is called %q", e.Control)
		}
		switch e.Outcome.Type {
		case "feedback":
			if e.Outcome.Reward != "" {
				bad(at+".outcome.reward", "is for outcome type reward")
			}
			if e.Outcome.Share != 0 {
				bad(at+".outcome.share", "is for outcome type reward")
			}
		case "reward":
			if _, ok := c.Rewards[e.Outcome.Reward]; !ok {
				bad(at+".outcome.reward", "no reward is called %q (rewards: %v)", e.Outcome.Reward, slices.Sorted(maps.Keys(c.Rewards)))
			}
			if !(e.Outcome.Share > 0 && e.Outcome.Share <= 1) {
				bad(at+".outcome.share", "must be in (0, 1]")
			}
		default:
			bad(at+".outcome.type", "must be feedback or reward; got %q", e.Outcome.Type)
		}
		switch e.Allocation {
		case "fixed":
			if e.MinShare != 0 {
				bad(at+".min_share", "applies to allocation thompson only")
			}
		case "thompson":
			if len(e.Arms) > 0 && !(e.MinShare >= 0 && e.MinShare <= 1/float64(len(e.Arms))) {
				bad(at+".min_share", "must be in [0, 1/arms]")
			}
		default:
			bad(at+".allocation", "must be fixed or thompson; got %q", e.Allocation)
		}
		if !(e.Alpha > 0 && e.Alpha < 0.5) {
			bad(at+".alpha", "must be in (0, 0.5)")
		}
		if !(e.MixingSD > 0) || math.IsInf(e.MixingSD, 0) {
			bad(at+".mixing_sd", "must be a positive number")
		}
	}
}
