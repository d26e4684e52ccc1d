package conv

import "time"

// ConvState is the state of a conversation with the human desk.
type ConvState string

// Conversation states (PRODUCT.md §5): bot → queued → assigned → closed,
// or abandoned (customer left, queue timeout). A transfer moves an
// assigned conversation to another owner (logged in Transfers) and keeps
// it assigned.
const (
	StateBot       ConvState = "bot"
	StateQueued    ConvState = "queued"
	StateAssigned  ConvState = "assigned"
	StateClosed    ConvState = "closed"
	StateAbandoned ConvState = "abandoned"
)

// Terminal reports whether s ends a conversation.
func (s ConvState) Terminal() bool { return s == StateClosed || s == StateAbandoned }

// Handoff events beyond the shared set in conv.go.
const (
	EvTicketCreated  EventType = "ticket_created"
	EvAgentStatus    EventType = "agent_status"
	EvOfferTimeout   EventType = "offer_timeout"
	EvNoReplyWarning EventType = "no_reply_warning"
	EvNote           EventType = "note"
)

// WorkOrderTypes are the dispositions an agent picks when closing a
// conversation (PRODUCT.md §5).
var WorkOrderTypes = []string{"故障报修", "服务申请", "建议", "意见", "咨询", "投诉", "举报", "表扬"}

// ValidWorkOrderType reports whether s is one of WorkOrderTypes.
func ValidWorkOrderType(s string) bool {
	for _, t := range WorkOrderTypes {
		if t == s {
			return true
		}
	}
	return false
}

// Transfer is one change of owner of a conversation.
type Transfer struct {
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Conversation is one contact handed to the human desk, from the handoff
// to its end.
type Conversation struct {
	ID           ConvID      `json:"id"`
	Customer     CustomerID  `json:"customer"`
	Channel      string      `json:"channel"`
	ChannelType  ChannelType `json:"channel_type"`
	Account      string      `json:"account,omitempty"`
	ExternalUser string      `json:"external_user"`
	Store        StoreID     `json:"store"`
	Skill        string      `json:"skill,omitempty"`
	State        ConvState   `json:"state"`
	// Agent is the owner (assigned, maybe not yet accepted).
	Agent    string `json:"agent,omitempty"`
	Accepted bool   `json:"accepted"`
	// Reason is why the bot handed over (explicit_request, anger, …).
	Reason string `json:"reason,omitempty"`
	// Version grows with every state change; timers carry it so a stale
	// timer is a no-op.
	Version int64 `json:"version"`
	// Declined are agents who let an offer time out; they are offered the
	// chat again only when nobody else can take it.
	Declined  []string   `json:"declined,omitempty"`
	Transfers []Transfer `json:"transfers,omitempty"`

	StartedAt time.Time `json:"started_at"`
	QueuedAt  time.Time `json:"queued_at"`
	// QueueDeadline is when a queued conversation is abandoned (max wait).
	QueueDeadline     time.Time `json:"queue_deadline,omitzero"`
	AssignedAt        time.Time `json:"assigned_at,omitzero"`
	AcceptedAt        time.Time `json:"accepted_at,omitzero"`
	EndedAt           time.Time `json:"ended_at,omitzero"`
	LastCustomerMsgAt time.Time `json:"last_customer_msg_at"`
	LastAgentMsgAt    time.Time `json:"last_agent_msg_at,omitzero"`
	LastNoticeAt      time.Time `json:"last_notice_at,omitzero"`

	Disposition string `json:"disposition,omitempty"`
	Resolved    bool   `json:"resolved"`
	// EndReason is why it ended: agent, idle, queue_timeout, customer_left, …
	EndReason string `json:"end_reason,omitempty"`
	KFCode    string `json:"kf_code,omitempty"`
}

// TurnRole says who produced a transcript turn.
type TurnRole string

// Transcript roles.
const (
	TurnCustomer TurnRole = "customer"
	TurnBot      TurnRole = "bot"
	TurnAgent    TurnRole = "agent"
	TurnSystem   TurnRole = "system"
	TurnNote     TurnRole = "note" // internal note, never sent to the customer
)

// Turn is one line of a customer's transcript.
type Turn struct {
	At   time.Time `json:"at"`
	Role TurnRole  `json:"role"`
	Text string    `json:"text"`
	// Kind is the inbound message kind for customer turns (text, image, …).
	Kind MsgKind `json:"kind,omitempty"`
	// EntryID is the KB entry that answered (bot turns).
	EntryID string `json:"entry,omitempty"`
	// Intent is the bot's decision reason (confident, explicit_request, anger…).
	Intent string `json:"intent,omitempty"`
	Agent  string `json:"agent,omitempty"`
	Conv   ConvID `json:"conv,omitempty"`
	MsgID  string `json:"msg_id,omitempty"`
	// State is the conversation state when the turn was recorded (queued
	// turns are what the customer wrote while waiting).
	State ConvState `json:"state,omitempty"`
}

// Ticket is a work order created when the desk cannot take a customer
// (closed, full, queue timeout); someone calls back later.
type Ticket struct {
	ID        string     `json:"id"`
	Customer  CustomerID `json:"customer"`
	Channel   string     `json:"channel"`
	Store     StoreID    `json:"store"`
	Skill     string     `json:"skill,omitempty"`
	Reason    string     `json:"reason"` // closed_hours, queue_full, queue_timeout
	Text      string     `json:"text,omitempty"`
	Conv      ConvID     `json:"conv,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// AgentStatus is an agent's availability.
type AgentStatus string

// Agent statuses: only online agents get new chats.
const (
	AgentOnline  AgentStatus = "online"
	AgentAway    AgentStatus = "away"
	AgentOffline AgentStatus = "offline"
)

// AgentProfile is the static description of an agent (from config).
type AgentProfile struct {
	Name string `json:"name"`
	// Display is shown to customers in the greeting ("" = Name).
	Display string `json:"display,omitempty"`
	// Number is the agent's work number (工号).
	Number   string    `json:"number,omitempty"`
	Role     Role      `json:"role"`
	Stores   []StoreID `json:"stores,omitempty"`
	Skills   []string  `json:"skills,omitempty"`
	MaxChats int       `json:"max_chats"`
	// WeComUserID is the agent's servicer userid for WeChat KF state 3.
	WeComUserID string `json:"wecom_userid,omitempty"`
}

// AgentInfo is an agent's live state as the console shows it.
type AgentInfo struct {
	AgentProfile
	Status AgentStatus `json:"status"`
	Chats  []ConvID    `json:"chats"`
}

// QuotaInfo is what the reply box shows: how many messages may still be
// sent and until when (-1 = no per-customer limit).
type QuotaInfo struct {
	Remaining int       `json:"remaining"`
	Until     time.Time `json:"until,omitzero"`
	// Note explains channel rules, e.g. KF chats are answered in WeCom.
	Note string `json:"note,omitempty"`
	// CanReply is false when the console cannot send on this chat now.
	CanReply bool `json:"can_reply"`
}

// DeskUpdate is a live-update notice published when a conversation or an
// agent changes; consoles re-read what they show.
type DeskUpdate struct {
	Kind  string    `json:"kind"` // conv, agent, reminder
	Conv  ConvID    `json:"conv,omitempty"`
	Store StoreID   `json:"store,omitempty"`
	Agent string    `json:"agent,omitempty"`
	State ConvState `json:"state,omitempty"`
	At    time.Time `json:"at"`
}
