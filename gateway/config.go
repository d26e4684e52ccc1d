package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"kefu/conv"
)

// Defaults, with their units in the names where it helps.
const (
	DefaultPassiveBudget   = 3 * time.Second // well inside WeChat's 5 s deadline
	DefaultMaxBodyBytes    = 256 << 10       // WeChat pushes are a few KiB
	DefaultTimestampWindow = 5 * time.Minute
	DefaultDedupeTTL       = 10 * time.Minute   // WeChat retries span ≈15 s; kept short because the embedded engine holds every key in memory
	DefaultKFDedupeTTL     = 7 * 24 * time.Hour // KF msgids: guards cursor rewinds
	DefaultShards          = 16
	DefaultRecoveryAfter   = 30 * time.Second
	DefaultHTTPTimeout     = 5 * time.Second
	DefaultMaxAttempts     = 8
	DefaultBaseBackoff     = time.Second
	DefaultMaxBackoff      = 5 * time.Minute
	DefaultAPIBase         = "https://api.weixin.qq.com"
	DefaultWeComAPIBase    = "https://qyapi.weixin.qq.com"
)

// Config configures the gateway: the HTTP edge, the channels and the
// outbound sender.
type Config struct {
	Listen       string          `yaml:"-"`
	APIBase      string          `yaml:"-"`
	WeComAPIBase string          `yaml:"-"`
	Channels     []ChannelConfig `yaml:"-"`

	// PassiveBudget is how long a callback waits for the answer to go back
	// as the passive reply before acking and sending it through the API.
	PassiveBudget time.Duration `yaml:"passive_budget"`
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// TimestampWindow bounds how far a callback's timestamp may be from now.
	TimestampWindow time.Duration `yaml:"timestamp_window"`
	// DedupeTTL keeps OA/WeCom/JSON dedupe keys; KFDedupeTTL keeps KF msgids.
	DedupeTTL   time.Duration `yaml:"dedupe_ttl"`
	KFDedupeTTL time.Duration `yaml:"kf_dedupe_ttl"`
	// Shards splits the inbox so a Redis Cluster spreads it over nodes.
	Shards int `yaml:"shards"`
	// RecoveryAfter is how long an accepted message may stay unanswered
	// before another worker (or this one after a restart) takes it over.
	RecoveryAfter time.Duration `yaml:"recovery_after"`
	// HTTPTimeout bounds every call to the WeChat APIs.
	HTTPTimeout time.Duration `yaml:"http_timeout"`
	// Outbound tunes the sender's retries.
	Outbound OutboundConfig `yaml:"outbound"`
}

// OutboundConfig tunes retries of the outbound sender.
type OutboundConfig struct {
	MaxAttempts int           `yaml:"max_attempts"`
	BaseBackoff time.Duration `yaml:"base_backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
}

// DefaultConfig returns the gateway defaults.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		APIBase:         DefaultAPIBase,
		WeComAPIBase:    DefaultWeComAPIBase,
		PassiveBudget:   DefaultPassiveBudget,
		MaxBodyBytes:    DefaultMaxBodyBytes,
		TimestampWindow: DefaultTimestampWindow,
		DedupeTTL:       DefaultDedupeTTL,
		KFDedupeTTL:     DefaultKFDedupeTTL,
		Shards:          DefaultShards,
		RecoveryAfter:   DefaultRecoveryAfter,
		HTTPTimeout:     DefaultHTTPTimeout,
		Outbound: OutboundConfig{
			MaxAttempts: DefaultMaxAttempts,
			BaseBackoff: DefaultBaseBackoff,
			MaxBackoff:  DefaultMaxBackoff,
		},
	}
}

// ChannelConfig is one configured IM endpoint. The YAML keys are a
// contract shared with deployments and external tests.
type ChannelConfig struct {
	// Name routes the channel: /wechat/oa/{name}, /wecom/kf/{name},
	// /wecom/app/{name}, /im/{name}.
	Name string           `yaml:"name"`
	Type conv.ChannelType `yaml:"type"`
	// AppID is the OA appid, or the corp id for wecom_* channels.
	AppID string `yaml:"app_id"`
	// AppSecret is the OA app secret, the WeCom app secret, or the 微信客服
	// secret for wecom_kf (a different secret, hence a different token).
	AppSecret string `yaml:"app_secret"`
	// Token signs callbacks (and, for json channels, is the HMAC secret).
	Token string `yaml:"token"`
	// EncodingAESKey is 43 characters; empty means plaintext mode only.
	EncodingAESKey string `yaml:"encoding_aes_key"`
	// Store is the default store of customers arriving on this channel.
	Store conv.StoreID `yaml:"store"`
	// AgentID is the WeCom app's agentid (wecom_app only).
	AgentID int `yaml:"agent_id"`
	// Scenes maps QR-code scene values and KF open_kfids to stores.
	Scenes map[string]conv.StoreID `yaml:"scenes"`
	// CallbackURL receives replies for json channels (empty: replies only
	// in the response body of the webhook call).
	CallbackURL string `yaml:"callback_url"`
}

var channelNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Validate checks the gateway config; errors name the key path.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Listen == "" {
		bad("listen", "must not be empty")
	}
	for key, base := range map[string]string{"wechat.api_base": c.APIBase, "wechat.wecom_api_base": c.WeComAPIBase} {
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key, "must be an http(s) URL, got %q", base)
		}
	}
	if c.PassiveBudget <= 0 || c.PassiveBudget > 4500*time.Millisecond {
		bad("gateway.passive_budget", "must be in (0, 4.5s] to stay inside WeChat's 5 s deadline, got %s", c.PassiveBudget)
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 16<<20 {
		bad("gateway.max_body_bytes", "must be in [1024, 16777216], got %d", c.MaxBodyBytes)
	}
	if c.TimestampWindow < time.Minute {
		bad("gateway.timestamp_window", "must be at least 1m, got %s", c.TimestampWindow)
	}
	if c.DedupeTTL < time.Minute {
		bad("gateway.dedupe_ttl", "must be at least 1m (WeChat retries span ≈15 s), got %s", c.DedupeTTL)
	}
	if c.KFDedupeTTL < time.Hour {
		bad("gateway.kf_dedupe_ttl", "must be at least 1h, got %s", c.KFDedupeTTL)
	}
	if c.Shards < 1 || c.Shards > 1024 {
		bad("gateway.shards", "must be in [1, 1024], got %d", c.Shards)
	}
	if c.RecoveryAfter < 5*time.Second {
		bad("gateway.recovery_after", "must be at least 5s, got %s", c.RecoveryAfter)
	}
	if c.HTTPTimeout <= 0 {
		bad("gateway.http_timeout", "must be positive, got %s", c.HTTPTimeout)
	}
	if c.Outbound.MaxAttempts < 1 {
		bad("gateway.outbound.max_attempts", "must be at least 1, got %d", c.Outbound.MaxAttempts)
	}
	if c.Outbound.BaseBackoff <= 0 || c.Outbound.MaxBackoff < c.Outbound.BaseBackoff {
		bad("gateway.outbound", "need 0 < base_backoff <= max_backoff, got %s and %s", c.Outbound.BaseBackoff, c.Outbound.MaxBackoff)
	}
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		if !channelNameRE.MatchString(ch.Name) {
			bad(key+".name", "must match %s, got %q", channelNameRE, ch.Name)
		} else if seen[ch.Name] {
			bad(key+".name", "duplicate channel name %q", ch.Name)
		}
		seen[ch.Name] = true
		if !ch.Type.Valid() {
			bad(key+".type", "must be one of wechat_oa, wecom_kf, wecom_app, json, got %q", ch.Type)
			continue
		}
		if ch.Token == "" {
			bad(key+".token", "must not be empty (it signs every callback)")
		}
		if ch.EncodingAESKey != "" {
			if _, err := newCipherKey(ch.EncodingAESKey, ch.AppID); err != nil {
				bad(key+".encoding_aes_key", "%v", err)
			}
		}
		switch ch.Type {
		case conv.ChannelWeChatOA:
			if !strings.HasPrefix(ch.AppID, "wx") {
				bad(key+".app_id", "an Official Account appid starts with \"wx\", got %q", ch.AppID)
			}
		case conv.ChannelWeComKF, conv.ChannelWeComApp:
			if ch.AppID == "" {
				bad(key+".app_id", "must be the corp id (ww…)")
			}
			if ch.EncodingAESKey == "" {
				bad(key+".encoding_aes_key", "WeCom callbacks are always encrypted; required for %s", ch.Type)
			}
			if ch.Type == conv.ChannelWeComApp && ch.AgentID <= 0 {
				bad(key+".agent_id", "must be the WeCom app's agentid (a positive integer)")
			}
		case conv.ChannelJSON:
			if len(ch.Token) < 16 {
				bad(key+".token", "the HMAC secret of a json channel must be at least 16 characters")
			}
			if ch.CallbackURL != "" {
				if u, err := url.Parse(ch.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
					bad(key+".callback_url", "must be an http(s) URL, got %q", ch.CallbackURL)
				}
			}
		}
		if ch.Type != conv.ChannelJSON && ch.AppSecret == "" {
			bad(key+".app_secret", "must not be empty: replies are sent through the API")
		}
	}
	return errors.Join(errs...)
}
