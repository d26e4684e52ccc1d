package surveys

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
	DefaultDelay           = 2 * time.Minute
	DefaultBotIdle         = 10 * time.Minute
	DefaultThrottleDays    = 30
	DefaultExpiry          = 24 * time.Hour
	DefaultQuietStart      = "21:00"
	DefaultQuietEnd        = "09:00"
	DefaultTimezone        = "Asia/Shanghai"
	DefaultDetractorMax    = 6
	DefaultCaseDeadline    = 24 * time.Hour
	DefaultAlertHold       = 20 * time.Second
	DefaultRobotBatchEvery = 3 * time.Second // 20 messages a minute per robot
	DefaultDigestBefore    = time.Hour
	DefaultDigestAt        = "08:00" // when a store has no opening time
	DefaultReSurveyDelay   = 24 * time.Hour
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultWebhookAttempts = 6
	// DefaultQuestion is the NPS question of PRODUCT.md §6, word for word.
	DefaultQuestion = "请问您有多大的可能性向您的同事或朋友推荐我们的产品或服务？请回复0到10之间的一个数字，0表示完全不可能，10表示非常可能。"
	// DefaultFollowUp asks for the reason (PRODUCT.md §6).
	DefaultFollowUp = "请问主要是什么原因让您给出这个分数？"
	DefaultThanks   = "感谢您的反馈，我们会继续努力！"
	// DefaultContactTime asks a detractor when the store manager may call.
	DefaultContactTime = "为了尽快帮您解决，店长会亲自联系您。请问什么时间方便回访？（例如：今晚7点后）"
	// DefaultReprompt answers a reply that is not a 0–10 score, once.
	DefaultReprompt  = "抱歉没看明白，请回复0到10之间的一个数字（例如：8）。回复“退订”不再收到此类调查。"
	DefaultOptOutAck = "已为您退订满意度调查，今后不再打扰。"
	// kfCodeLife is the end-of-session msg_code validity (WECHAT.md §4.5).
	kfCodeLife = 20 * time.Second
	// kfCodeMargin leaves the sender time to deliver inside the 20 s.
	kfCodeMargin = 4 * time.Second
	// windowMargin keeps a survey from racing the 48 h window's end.
	windowMargin = 5 * time.Minute
	// oaWindow is the OA/KF customer-service window (WECHAT.md §2.1, §4.4).
	oaWindow = 48 * time.Hour
)

// DefaultRootCauses are the root causes a manager picks when closing a case.
var DefaultRootCauses = []string{"等待时间长", "服务态度", "产品质量", "价格", "配送/物流", "门店环境", "流程/政策", "误会/沟通", "其他"}

// DefaultOutcomes are the callback outcomes a manager records.
var DefaultOutcomes = []string{"已解决-客户满意", "已解决-客户仍不满意", "未联系上", "客户拒绝沟通"}

// Config configures surveys and the detractor loop (YAML section "surveys").
type Config struct {
	// Enabled turns surveys on; off, Schedule only records "disabled".
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Delay is the wait between the end of a contact and the survey.
	Delay time.Duration `yaml:"delay" json:"delay"`
	// BotIdle ends a bot-only contact after this long without a bot turn.
	BotIdle time.Duration `yaml:"bot_idle" json:"bot_idle"`
	// ThrottleDays allows one survey per brand-wide customer per N days.
	ThrottleDays int `yaml:"throttle_days" json:"throttle_days"`
	// Expiry is how long an answer is waited for after sending.
	Expiry time.Duration `yaml:"expiry" json:"expiry"`
	// MaxDefer bounds deferral (quiet hours) on channels without a
	// platform window (json, wecom_app).
	MaxDefer time.Duration `yaml:"max_defer" json:"max_defer"`
	// Quiet hours: no survey between QuietStart and QuietEnd ("HH:MM",
	// may wrap midnight) in Timezone; surveys are deferred to QuietEnd
	// while the channel's window still allows, else not sent.
	QuietStart string `yaml:"quiet_start" json:"quiet_start"`
	QuietEnd   string `yaml:"quiet_end" json:"quiet_end"`
	Timezone   string `yaml:"timezone" json:"timezone"`
	// Question is the wording (versioned).
	Question QuestionConfig `yaml:"question" json:"question"`
	// OptOutWords are messages that mean "no more surveys".
	OptOutWords []string `yaml:"opt_out_words" json:"opt_out_words"`
	// DetractorMax is the detractor threshold: a score ≤ it opens a case.
	DetractorMax int `yaml:"detractor_max" json:"detractor_max"`
	// Cases configures the detractor closed loop.
	Cases CasesConfig `yaml:"cases" json:"cases"`
	// Alerts configures how managers are reached.
	Alerts AlertsConfig `yaml:"alerts" json:"alerts"`
	// Digest configures the daily per-store digest.
	Digest DigestConfig `yaml:"digest" json:"digest"`
	// Stores is the brand → region → store tree with its managers.
	Stores conv.StoreNode `yaml:"stores" json:"stores"`
	// PollInterval is how often Run looks for due timers.
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval"`
}

// QuestionConfig is one brand's survey wording. Change Version whenever
// the wording changes: every response records it.
type QuestionConfig struct {
	Version  string `yaml:"version" json:"version"`
	Text     string `yaml:"text" json:"text"`
	FollowUp string `yaml:"follow_up" json:"follow_up"`
	Thanks   string `yaml:"thanks" json:"thanks"`
	// ContactTime asks detractors for a call-back time after their reason
	// ("" skips the question).
	ContactTime string `yaml:"contact_time" json:"contact_time"`
	Reprompt    string `yaml:"reprompt" json:"reprompt"`
	// OptOutAck confirms an opt-out.
	OptOutAck string `yaml:"opt_out_ack" json:"opt_out_ack"`
	// Style is "text" (default) or "menu". A 0–10 scale has 11 choices; a
	// KF msgmenu holds at most 10, so KF always gets text. "menu" sends OA
	// customers an 11-item msgmenu (tap instead of type), which needs a
	// verified account (sandbox accounts answer 40200).
	Style string `yaml:"style" json:"style"`
}

// CasesConfig configures detractor cases.
type CasesConfig struct {
	// Deadline is the time a store has to resolve a case before it escalates.
	Deadline time.Duration `yaml:"deadline" json:"deadline"`
	// Reminders are sent this long before the deadline (e.g. [4h, 1h]).
	Reminders []time.Duration `yaml:"reminders" json:"reminders"`
	// RootCauses and Outcomes are the choices when closing.
	RootCauses []string `yaml:"root_causes" json:"root_causes"`
	Outcomes   []string `yaml:"outcomes" json:"outcomes"`
	// ReSurvey asks the customer again ReSurveyDelay after resolution and
	// counts a score above the detractor threshold as recovered.
	ReSurvey      bool          `yaml:"re_survey" json:"re_survey"`
	ReSurveyDelay time.Duration `yaml:"re_survey_delay" json:"re_survey_delay"`
}

// AlertsConfig says how managers are alerted. Each manager is reached on
// every route their entry in the store tree has and the config enables.
type AlertsConfig struct {
	// WeComAppChannel is the wecom_app channel name for app messages.
	WeComAppChannel string `yaml:"wecom_app_channel" json:"wecom_app_channel"`
	// Robot enables group robot posts (Manager.RobotKey).
	Robot bool `yaml:"robot" json:"robot"`
	// TemplateChannel/TemplateID send OA template messages (Manager.OpenID).
	TemplateChannel string `yaml:"template_channel" json:"template_channel"`
	TemplateID      string `yaml:"template_id" json:"template_id"`
	// WebhookSecret signs generic webhooks (Manager.Webhook) with HMAC-SHA256.
	WebhookSecret   string `yaml:"webhook_secret" json:"-"`
	WebhookAttempts int    `yaml:"webhook_attempts" json:"webhook_attempts"`
	// ConsoleURL is the console's base URL for transcript and claim links.
	ConsoleURL string `yaml:"console_url" json:"console_url"`
	// ClaimSecret signs one-tap claim links.
	ClaimSecret string `yaml:"claim_secret" json:"-"`
	// ClaimTTL bounds how long a claim link works.
	ClaimTTL time.Duration `yaml:"claim_ttl" json:"claim_ttl"`
	// Hold waits this long after a bare score for the customer's comment
	// before alerting, so the alert carries it (well inside one minute).
	Hold time.Duration `yaml:"hold" json:"hold"`
	// RobotBatchEvery is the shortest gap between two posts to one robot or
	// one WeCom member; alerts pending meanwhile go out together as one
	// markdown message (robots take 20 a minute, members 30).
	RobotBatchEvery time.Duration `yaml:"robot_batch_every" json:"robot_batch_every"`
}

// DigestConfig configures the daily digest to each store's managers.
type DigestConfig struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Before is how long before the store's opening time it goes out.
	Before time.Duration `yaml:"before" json:"before"`
	// At is used for stores without an opening time ("HH:MM").
	At string `yaml:"at" json:"at"`
}

// DefaultConfig returns the defaults of PRODUCT.md §6–7.
func DefaultConfig() Config {
	return Config{
		Enabled:      true,
		Delay:        DefaultDelay,
		BotIdle:      DefaultBotIdle,
		ThrottleDays: DefaultThrottleDays,
		Expiry:       DefaultExpiry,
		MaxDefer:     DefaultExpiry,
		QuietStart:   DefaultQuietStart,
		QuietEnd:     DefaultQuietEnd,
		Timezone:     DefaultTimezone,
		Question: QuestionConfig{Version: "nps-zh-1", Text: DefaultQuestion, FollowUp: DefaultFollowUp, Thanks: DefaultThanks,
			ContactTime: DefaultContactTime, Reprompt: DefaultReprompt, OptOutAck: DefaultOptOutAck, Style: "text"},
		OptOutWords:  append([]string(nil), DefaultOptOutWords...),
		DetractorMax: DefaultDetractorMax,
		Cases: CasesConfig{Deadline: DefaultCaseDeadline, Reminders: []time.Duration{4 * time.Hour, time.Hour},
			RootCauses: append([]string(nil), DefaultRootCauses...), Outcomes: append([]string(nil), DefaultOutcomes...),
			ReSurveyDelay: DefaultReSurveyDelay},
		Alerts:       AlertsConfig{Robot: true, WebhookAttempts: DefaultWebhookAttempts, ClaimTTL: 7 * 24 * time.Hour, Hold: DefaultAlertHold, RobotBatchEvery: DefaultRobotBatchEvery},
		Digest:       DigestConfig{Enabled: true, Before: DefaultDigestBefore, At: DefaultDigestAt},
		PollInterval: DefaultPollInterval,
	}
}

var (
	reHHMM    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	reUserID  = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
	reOpenID  = regexp.MustCompile(`^[A-Za-z0-9_-]{6,64}$`)
	reRobot   = regexp.MustCompile(`^[A-Za-z0-9-]{8,64}$`)
	reVersion = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
)

// Validate checks the config. Errors name the key path under "surveys",
// e.g. "stores.children[0].managers[1].wecom_userid: …".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.Delay < 0 || c.Delay > 7*24*time.Hour {
		bad("delay", "must be in [0, 168h], got %s", c.Delay)
	}
	if c.BotIdle < time.Second {
		bad("bot_idle", "must be at least 1s, got %s", c.BotIdle)
	}
	if c.ThrottleDays < 0 || c.ThrottleDays > 366 {
		bad("throttle_days", "must be in [0, 366], got %d", c.ThrottleDays)
	}
	if c.Expiry < time.Minute {
		bad("expiry", "must be at least 1m, got %s", c.Expiry)
	}
	if c.MaxDefer < 0 {
		bad("max_defer", "must not be negative, got %s", c.MaxDefer)
	}
	if (c.QuietStart == "") != (c.QuietEnd == "") {
		bad("quiet_start", "quiet_start and quiet_end are set together (both empty disables quiet hours)")
	}
	for key, v := range map[string]string{"quiet_start": c.QuietStart, "quiet_end": c.QuietEnd} {
		if v != "" && !reHHMM.MatchString(v) {
			bad(key, "must be HH:MM, got %q", v)
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
		bad("timezone", "unknown time zone %q", c.Timezone)
	}
	if !reVersion.MatchString(c.Question.Version) {
		bad("question.version", "must be 1–32 of [A-Za-z0-9_.-] (every response records it), got %q", c.Question.Version)
	}
	for key, v := range map[string]string{"question.text": c.Question.Text, "question.follow_up": c.Question.FollowUp, "question.thanks": c.Question.Thanks} {
		if strings.TrimSpace(v) == "" {
			bad(key, "must not be empty")
		} else if len(v) > 1024 {
			bad(key, "must be at most 1024 bytes (msgmenu head limit), got %d", len(v))
		}
	}
	if s := c.Question.Style; s != "" && s != "text" && s != "menu" {
		bad("question.style", "must be text or menu, got %q", s)
	}
	if c.DetractorMax < 0 || c.DetractorMax > 9 {
		bad("detractor_max", "must be in [0, 9], got %d", c.DetractorMax)
	}
	if c.Cases.Deadline < time.Second {
		bad("cases.deadline", "must be at least 1s, got %s", c.Cases.Deadline)
	}
	for i, r := range c.Cases.Reminders {
		if r <= 0 || r >= c.Cases.Deadline {
			bad(fmt.Sprintf("cases.reminders[%d]", i), "must be in (0, deadline %s), got %s", c.Cases.Deadline, r)
		}
	}
	if len(c.Cases.RootCauses) == 0 {
		bad("cases.root_causes", "must list at least one root cause (closing a case requires one)")
	}
	if len(c.Cases.Outcomes) == 0 {
		bad("cases.outcomes", "must list at least one callback outcome")
	}
	if c.Cases.ReSurvey && c.Cases.ReSurveyDelay <= 0 {
		bad("cases.re_survey_delay", "must be positive when re_survey is on")
	}
	a := c.Alerts
	if a.ConsoleURL != "" {
		if u, err := url.Parse(a.ConsoleURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("alerts.console_url", "must be an http(s) URL, got %q", a.ConsoleURL)
		}
	}
	if a.ConsoleURL != "" && len(a.ClaimSecret) < 16 {
		bad("alerts.claim_secret", "must be at least 16 characters: it signs one-tap claim links")
	}
	if (a.TemplateChannel == "") != (a.TemplateID == "") {
		bad("alerts.template_id", "template_channel and template_id are set together")
	}
	if a.Hold < 0 || a.Hold > 40*time.Second {
		bad("alerts.hold", "must be in [0, 40s] so managers hear within a minute, got %s", a.Hold)
	}
	if a.RobotBatchEvery < 0 {
		bad("alerts.robot_batch_every", "must not be negative")
	}
	if a.WebhookAttempts < 1 {
		bad("alerts.webhook_attempts", "must be at least 1, got %d", a.WebhookAttempts)
	}
	if c.Digest.Enabled && !reHHMM.MatchString(c.Digest.At) {
		bad("digest.at", "must be HH:MM, got %q", c.Digest.At)
	}
	if c.PollInterval <= 0 || c.PollInterval > time.Minute {
		bad("poll_interval", "must be in (0, 1m], got %s", c.PollInterval)
	}
	if c.Stores.ID != "" {
		if _, err := conv.NewStoreTree(c.Stores); err != nil {
			errs = append(errs, err)
		}
		c.validateNode(c.Stores, "stores", bad)
	}
	return errors.Join(errs...)
}

// validateNode checks managers and times of n and its children.
func (c Config) validateNode(n conv.StoreNode, path string, bad func(key, format string, a ...any)) {
	if n.Opening != "" && !reHHMM.MatchString(n.Opening) {
		bad(path+".opening", "must be HH:MM, got %q", n.Opening)
	}
	for i, m := range n.Managers {
		mp := fmt.Sprintf("%s.managers[%d]", path, i)
		if strings.TrimSpace(m.Name) == "" {
			bad(mp+".name", "must not be empty")
		}
		if m.WeComUserID == "" && m.RobotKey == "" && m.OpenID == "" && m.Webhook == "" {
			bad(mp, "has no alert route: set wecom_userid, robot_key, openid or webhook")
		}
		if m.WeComUserID != "" && !reUserID.MatchString(m.WeComUserID) {
			bad(mp+".wecom_userid", "must be a WeCom userid (1–64 of [A-Za-z0-9_.@-], no \"|\"), got %q", m.WeComUserID)
		}
		if m.WeComUserID != "" && c.Alerts.WeComAppChannel == "" {
			bad(mp+".wecom_userid", "is set but alerts.wecom_app_channel is empty, so it would never be used")
		}
		if m.RobotKey != "" && !reRobot.MatchString(m.RobotKey) {
			bad(mp+".robot_key", "must be the robot webhook key (8–64 of [A-Za-z0-9-]), not a URL")
		}
		if m.OpenID != "" && !reOpenID.MatchString(m.OpenID) {
			bad(mp+".openid", "must be an OA OpenID, got %q", m.OpenID)
		}
		if m.OpenID != "" && c.Alerts.TemplateChannel == "" {
			bad(mp+".openid", "is set but alerts.template_channel/template_id are empty")
		}
		if m.Webhook != "" {
			if u, err := url.Parse(m.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(mp+".webhook", "must be an http(s) URL, got %q", m.Webhook)
			} else if c.Alerts.WebhookSecret == "" {
				bad(mp+".webhook", "is set but alerts.webhook_secret is empty (webhooks are always signed)")
			}
		}
	}
	for i, ch := range n.Children {
		c.validateNode(ch, fmt.Sprintf("%s.children[%d]", path, i), bad)
	}
}
