package handoff

import (
	"errors"
	"fmt"
	"time"
)

// Defaults, with units in the names where they matter.
const (
	DefaultMaxChats        = 5
	DefaultQueueCapacity   = 100
	DefaultMaxWait         = 10 * time.Minute
	DefaultAcceptTimeout   = 30 * time.Second
	DefaultNoReplyReminder = 2 * time.Minute
	DefaultIdleClose       = 30 * time.Minute
	DefaultAvgHandle       = 3 * time.Minute
	DefaultNoticeEvery     = time.Minute
	DefaultTranscriptTurns = 200
	DefaultTranscriptTTL   = 30 * 24 * time.Hour
	DefaultTimezone        = "Asia/Shanghai"
)

// Messages are the texts customers get from the desk. {position}, {wait},
// {name} and {number} are replaced.
type Messages struct {
	Queued       string `yaml:"queued"`
	StillQueued  string `yaml:"still_queued"`
	ClosedHours  string `yaml:"closed_hours"`
	QueueFull    string `yaml:"queue_full"`
	QueueTimeout string `yaml:"queue_timeout"`
	Greeting     string `yaml:"greeting"`
	IdleClosed   string `yaml:"idle_closed"`
}

// Config configures the handoff desk (the `handoff:` YAML section).
type Config struct {
	// QueueCapacity is the most conversations one queue (store + skill) holds.
	QueueCapacity int `yaml:"queue_capacity"`
	// MaxWait is how long a customer waits in the queue before the
	// conversation is abandoned with a ticket.
	MaxWait time.Duration `yaml:"max_wait"`
	// AcceptTimeout is how long an agent has to accept an offered chat
	// before it goes to the next agent.
	AcceptTimeout time.Duration `yaml:"accept_timeout"`
	// NoReplyReminder reminds the owner when a customer waits this long.
	NoReplyReminder time.Duration `yaml:"no_reply_reminder"`
	// IdleClose closes an assigned conversation without activity this long.
	IdleClose time.Duration `yaml:"idle_close"`
	// AvgHandle estimates the expected wait told to queued customers.
	AvgHandle time.Duration `yaml:"avg_handle"`
	// NoticeEvery limits "still queued" replies to one per this interval
	// (each costs one of the OA's 5 sends per customer message).
	NoticeEvery time.Duration `yaml:"notice_every"`
	// DefaultMaxChats caps concurrent chats of agents without max_chats.
	DefaultMaxChats int `yaml:"default_max_chats"`
	// TranscriptTurns bounds each customer's transcript.
	TranscriptTurns int           `yaml:"transcript_turns"`
	TranscriptTTL   time.Duration `yaml:"transcript_ttl"`
	// Timezone of business hours (IANA name).
	Timezone string   `yaml:"timezone"`
	Messages Messages `yaml:"messages"`
}

// DefaultConfig returns the defaults with Chinese customer texts.
func DefaultConfig() Config {
	return Config{
		QueueCapacity:   DefaultQueueCapacity,
		MaxWait:         DefaultMaxWait,
		AcceptTimeout:   DefaultAcceptTimeout,
		NoReplyReminder: DefaultNoReplyReminder,
		IdleClose:       DefaultIdleClose,
		AvgHandle:       DefaultAvgHandle,
		NoticeEvery:     DefaultNoticeEvery,
		DefaultMaxChats: DefaultMaxChats,
		TranscriptTurns: DefaultTranscriptTurns,
		TranscriptTTL:   DefaultTranscriptTTL,
		Timezone:        DefaultTimezone,
		Messages: Messages{
			Queued:       "正在为您转接人工客服，您前面还有{position}位，预计等待{wait}。",
			StillQueued:  "您仍在排队中，前面还有{position}位，预计等待{wait}，请稍候。",
			ClosedHours:  "现在是非工作时间，人工客服暂时无法接入。我们已为您登记服务单，工作时间会尽快联系您。",
			QueueFull:    "当前咨询人数较多，人工客服暂时无法接入。我们已为您登记服务单，稍后会尽快联系您。",
			QueueTimeout: "抱歉让您久等了，人工客服暂时无法接入。我们已为您登记服务单，稍后会尽快联系您。",
			Greeting:     "您好，我是客服{name}（工号{number}），很高兴为您服务，请问有什么可以帮您？",
			IdleClosed:   "由于长时间没有收到您的消息，本次会话已结束。如需帮助请随时留言。",
		},
	}
}

// Validate checks c and names the offending key path (handoff.…).
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("handoff.%s: must be positive, got %s", name, d))
		}
	}
	if c.QueueCapacity <= 0 {
		errs = append(errs, fmt.Errorf("handoff.queue_capacity: must be positive, got %d", c.QueueCapacity))
	}
	if c.DefaultMaxChats <= 0 {
		errs = append(errs, fmt.Errorf("handoff.default_max_chats: must be positive, got %d", c.DefaultMaxChats))
	}
	if c.TranscriptTurns <= 0 {
		errs = append(errs, fmt.Errorf("handoff.transcript_turns: must be positive, got %d", c.TranscriptTurns))
	}
	pos("max_wait", c.MaxWait)
	pos("accept_timeout", c.AcceptTimeout)
	pos("no_reply_reminder", c.NoReplyReminder)
	pos("idle_close", c.IdleClose)
	pos("avg_handle", c.AvgHandle)
	pos("notice_every", c.NoticeEvery)
	pos("transcript_ttl", c.TranscriptTTL)
	if _, err := loadZone(c.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("handoff.timezone: %w", err))
	}
	for name, v := range map[string]string{"queued": c.Messages.Queued, "closed_hours": c.Messages.ClosedHours,
		"queue_full": c.Messages.QueueFull, "queue_timeout": c.Messages.QueueTimeout} {
		if v == "" {
			errs = append(errs, fmt.Errorf("handoff.messages.%s: must not be empty (customers deserve an honest message)", name))
		}
	}
	return errors.Join(errs...)
}

// loadZone loads an IANA zone; Asia/Shanghai falls back to a fixed UTC+8
// so a container without tzdata still works.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		name = DefaultTimezone
	}
	loc, err := time.LoadLocation(name)
	if err != nil && name == DefaultTimezone {
		return time.FixedZone("CST", 8*3600), nil
	}
	return loc, err
}
