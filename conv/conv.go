// Package conv holds the leaf types every kefu package shares: inbound
// messages, replies, customers, stores, domain events and sentinel errors.
// It imports nothing from the project, so every other package may import it.
package conv

import (
	"errors"
	"strings"
	"time"
)

// ChannelType names the kind of IM endpoint a message came through.
type ChannelType string

// The channel types kefu speaks.
const (
	ChannelWeChatOA ChannelType = "wechat_oa" // WeChat Official Account (公众号)
	ChannelWeComKF  ChannelType = "wecom_kf"  // WeChat Customer Service (微信客服)
	ChannelWeComApp ChannelType = "wecom_app" // WeCom (企业微信) self-built app
	ChannelJSON     ChannelType = "json"      // signed JSON webhook (web widget, other IMs)
)

// Valid reports whether t is one of the known channel types.
func (t ChannelType) Valid() bool {
	switch t {
	case ChannelWeChatOA, ChannelWeComKF, ChannelWeComApp, ChannelJSON:
		return true
	}
	return false
}

// StoreID identifies a store (门店) in the brand → region → store tree.
type StoreID string

// CustomerID identifies a customer within one channel: "<channel>:<external id>"
// (OpenID for OA, external_userid for KF, userid for WeCom, the JSON channel's user id).
type CustomerID string

// NewCustomerID builds the CustomerID of user externalID on channel.
func NewCustomerID(channel, externalID string) CustomerID {
	return CustomerID(channel + ":" + externalID)
}

// ConvID identifies one conversation (contact) with a customer.
type ConvID string

// MsgKind is the kind of an inbound message.
type MsgKind string

// Inbound message kinds. Unknown kinds are kept as MsgUnknown with Raw set,
// never dropped.
const (
	MsgText     MsgKind = "text"
	MsgImage    MsgKind = "image"
	MsgVoice    MsgKind = "voice"
	MsgVideo    MsgKind = "video"
	MsgFile     MsgKind = "file"
	MsgLocation MsgKind = "location"
	MsgLink     MsgKind = "link"
	MsgEvent    MsgKind = "event"
	MsgUnknown  MsgKind = "unknown"
)

// Message is one inbound customer message or platform event, normalised from
// any channel. It is what the gateway durably accepts and the router handles.
type Message struct {
	// ID is the dedupe key of the message (see gateway dedupe keys); unique
	// across channels.
	ID          string      `json:"id"`
	Channel     string      `json:"channel"` // configured channel name
	ChannelType ChannelType `json:"channel_type"`
	// Account is the platform account the message was sent to: the OA's
	// original id (gh_…), the corp id, or the KF open_kfid.
	Account  string     `json:"account,omitempty"`
	Customer CustomerID `json:"customer"`
	// ExternalUser is the platform's user id (OpenID, external_userid, userid).
	ExternalUser string            `json:"external_user"`
	Store        StoreID           `json:"store,omitempty"`
	Kind         MsgKind           `json:"kind"`
	RawType      string            `json:"raw_type,omitempty"` // platform msgtype as received
	PlatformID   string            `json:"platform_id,omitempty"`
	Text         string            `json:"text,omitempty"`
	MediaID      string            `json:"media_id,omitempty"`
	URL          string            `json:"url,omitempty"` // PicUrl, link Url
	Title        string            `json:"title,omitempty"`
	Description  string            `json:"description,omitempty"`
	Latitude     float64           `json:"lat,omitempty"`
	Longitude    float64           `json:"lng,omitempty"`
	Label        string            `json:"label,omitempty"`
	Event        string            `json:"event,omitempty"`
	EventKey     string            `json:"event_key,omitempty"`
	MenuID       string            `json:"menu_id,omitempty"` // msgmenu click (bizmsgmenuid / menu_id)
	AgentID      string            `json:"agent_id,omitempty"`
	Origin       int               `json:"origin,omitempty"` // KF: 3 customer, 4 system, 5 agent in WeCom client
	ServicerID   string            `json:"servicer_id,omitempty"`
	Code         string            `json:"code,omitempty"` // KF welcome_code / msg_code
	Extra        map[string]string `json:"extra,omitempty"`
	Raw          []byte            `json:"raw,omitempty"` // kept for unknown kinds
	CreatedAt    time.Time         `json:"created_at"`
	ReceivedAt   time.Time         `json:"received_at"`
}

// HasText says whether m carries text to answer: a text message, or a
// voice message WeChat transcribed (Text holds the recognition).
func (m Message) HasText() bool {
	return m.Kind == MsgText || m.Kind == MsgVoice && strings.TrimSpace(m.Text) != ""
}

// ReplyKind is the kind of an outbound message.
type ReplyKind string

// Outbound message kinds.
const (
	ReplyText     ReplyKind = "text"
	ReplyImage    ReplyKind = "image"
	ReplyNews     ReplyKind = "news"
	ReplyMenu     ReplyKind = "msgmenu"
	ReplyTransfer ReplyKind = "transfer_customer_service"
	ReplyMarkdown ReplyKind = "markdown"
)

// MenuItem is one choice of a msgmenu.
type MenuItem struct {
	ID      string `json:"id"`
	Content string `json:"content"`
}

// Article is one item of a news message.
type Article struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	PicURL      string `json:"picurl,omitempty"`
}

// Reply is one outbound message to a customer, independent of channel.
type Reply struct {
	Kind     ReplyKind  `json:"kind"`
	Text     string     `json:"text,omitempty"`
	MediaID  string     `json:"media_id,omitempty"`
	Head     string     `json:"head,omitempty"` // msgmenu head_content
	Menu     []MenuItem `json:"menu,omitempty"`
	Tail     string     `json:"tail,omitempty"` // msgmenu tail_content
	Articles []Article  `json:"articles,omitempty"`
	// KFAccount targets a WeChat agent for transfer_customer_service.
	KFAccount string `json:"kf_account,omitempty"`
}

// Text returns a plain text reply.
func Text(s string) Reply { return Reply{Kind: ReplyText, Text: s} }

// Event is one entry of the append-only domain event log that reports read.
type Event struct {
	ID       string            `json:"id,omitempty"` // assigned by the log
	Type     EventType         `json:"type"`
	At       time.Time         `json:"at"`
	Conv     ConvID            `json:"conv,omitempty"`
	Customer CustomerID        `json:"customer,omitempty"`
	Store    StoreID           `json:"store,omitempty"`
	Channel  string            `json:"channel,omitempty"`
	Agent    string            `json:"agent,omitempty"`
	Actor    string            `json:"actor,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Data     map[string]string `json:"data,omitempty"`
}

// EventType names a domain event.
type EventType string

// Domain events appended to the event log.
const (
	EvMessageReceived  EventType = "message_received"
	EvBotAnswered      EventType = "bot_answered"
	EvBotClarify       EventType = "bot_clarify"
	EvBotFallback      EventType = "bot_fallback"
	EvHandoffRequested EventType = "handoff_requested"
	EvQueued           EventType = "queued"
	EvAssigned         EventType = "assigned"
	EvAccepted         EventType = "accepted"
	EvTransferred      EventType = "transferred"
	EvAgentReply       EventType = "agent_reply"
	EvClosed           EventType = "closed"
	EvAbandoned        EventType = "abandoned"
	EvSurveyScheduled  EventType = "survey_scheduled"
	EvSurveySent       EventType = "survey_sent"
	EvSurveyNotSent    EventType = "survey_not_sent"
	EvSurveyAnswered   EventType = "survey_answered"
	EvCaseOpened       EventType = "case_opened"
	EvCaseContacted    EventType = "case_contacted"
	EvCaseEscalated    EventType = "case_escalated"
	EvCaseClosed       EventType = "case_closed"
	EvOutboundSent     EventType = "outbound_sent"
	EvOutboundFailed   EventType = "outbound_failed"
)

// Sentinel errors shared across packages; wrap them with %w and test with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrBadInput       = errors.New("bad input")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrForbidden      = errors.New("forbidden")
	ErrConflict       = errors.New("conflict")
	ErrUnavailable    = errors.New("unavailable")
	ErrWindowClosed   = errors.New("messaging window closed")
	ErrQuotaExhausted = errors.New("message quota exhausted")
)

// OutboundKind says which API an Outbound goes through.
type OutboundKind string

// Outbound kinds.
const (
	// OutCustomer is a message to a customer in their chat (OA custom/send,
	// KF send_msg, WeCom app message/send, JSON callback); it counts toward
	// the channel's per-customer quota.
	OutCustomer OutboundKind = "customer"
	// OutKFEvent is a KF send_msg_on_event message gated by a code (welcome,
	// queue notice, end of session).
	OutKFEvent OutboundKind = "kf_event"
	// OutRobot posts to a WeCom group robot webhook (To = robot key).
	OutRobot OutboundKind = "robot"
	// OutWeComApp sends a WeCom app message to members (To = "u1|u2").
	OutWeComApp OutboundKind = "wecom_app"
	// OutTemplate sends an OA template message (To = OpenID).
	OutTemplate OutboundKind = "template"
)

// Outbound is one message for the outbound sender. Domains build it; the
// gateway delivers it durably with quotas, retries and dead letters.
type Outbound struct {
	// ID makes sending idempotent: an ID is delivered at most once.
	ID      string       `json:"id"`
	Kind    OutboundKind `json:"kind"`
	Channel string       `json:"channel"`
	To      string       `json:"to"`
	// Account is the KF open_kfid for KF channels.
	Account string `json:"account,omitempty"`
	Reply   Reply  `json:"reply"`
	// TriggerAt is the customer's last qualifying message: the 48 h window
	// and the 5-message quota start there.
	TriggerAt time.Time `json:"trigger_at,omitempty"`
	// TriggerShort marks a trigger that opens only the short OA allowance
	// (follow, menu click, QR scan: 3 messages within a minute).
	TriggerShort bool `json:"trigger_short,omitempty"`
	// Code is the KF send_msg_on_event code (OutKFEvent).
	Code string `json:"code,omitempty"`
	// Template is the OA template message (OutTemplate).
	Template *Template `json:"template,omitempty"`
	// Source says who produced it: bot, agent, survey, alert.
	Source string `json:"source,omitempty"`
	// RefuseOverQuota makes Send refuse (ErrQuotaExhausted,
	// ErrWindowClosed) a customer message that the customer's allowance,
	// counting messages already queued, cannot cover, instead of queueing
	// it to be dead-lettered later. Agents' replies use it so the console
	// can tell the agent at once.
	RefuseOverQuota bool `json:"refuse_over_quota,omitempty"`
}

// Template is an OA template message.
type Template struct {
	TemplateID  string            `json:"template_id"`
	URL         string            `json:"url,omitempty"`
	ClientMsgID string            `json:"client_msg_id,omitempty"`
	Data        map[string]string `json:"data"`
}
