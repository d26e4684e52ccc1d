package wxsim

import (
	"strconv"
	"strings"
)

// xmlWriter writes WeChat-style XML by hand: strings as CDATA, numbers bare,
// fields in the order WeChat uses. encoding/xml cannot emit CDATA for plain
// string fields, and the gateway must cope with the real wire shape.
type xmlWriter struct{ b strings.Builder }

func (w *xmlWriter) open()  { w.b.WriteString("<xml>") }
func (w *xmlWriter) close() { w.b.WriteString("</xml>") }

// str writes <name><![CDATA[v]]></name>.
func (w *xmlWriter) str(name, v string) {
	w.b.WriteString("<" + name + ">")
	w.b.WriteString(cdata(v))
	w.b.WriteString("</" + name + ">")
}

// num writes <name>v</name>.
func (w *xmlWriter) num(name string, v int64) {
	w.b.WriteString("<" + name + ">" + strconv.FormatInt(v, 10) + "</" + name + ">")
}

// flt writes a float the way WeChat does (no exponent, no trailing zeros).
func (w *xmlWriter) flt(name string, v float64) {
	w.b.WriteString("<" + name + ">" + strconv.FormatFloat(v, 'f', -1, 64) + "</" + name + ">")
}

func (w *xmlWriter) bytes() []byte { return []byte(w.b.String()) }

// cdata wraps s in a CDATA section, splitting any "]]>" inside it so the
// output stays well-formed whatever the test content is.
func cdata(s string) string {
	return "<![CDATA[" + strings.ReplaceAll(s, "]]>", "]]]]><![CDATA[>") + "]]>"
}

// Interaction is a kind of user action that opens (or closes) an Official
// Account customer-service messaging window (WECHAT.md §2.1).
type Interaction int

// The interaction kinds. Only some user actions grant a window; menu-message
// (msgmenu) clicks and VIEW clicks do not.
const (
	InteractNone        Interaction = iota // no effect on the window
	InteractMessage                        // user message: 5 sends within 48 h
	InteractFollow                         // follow: 3 sends within 1 min
	InteractClick                          // click/scancode_* menu event: 3 within 1 min
	InteractScan                           // QR scan: 3 within 1 min
	InteractPayment                        // payment: unlimited within 48 h
	InteractUnsubscribe                    // unfollow: closes every window
)

// String names the interaction for logs and test output.
func (i Interaction) String() string {
	switch i {
	case InteractMessage:
		return "message"
	case InteractFollow:
		return "follow"
	case InteractClick:
		return "click"
	case InteractScan:
		return "scan"
	case InteractPayment:
		return "payment"
	case InteractUnsubscribe:
		return "unsubscribe"
	}
	return "none"
}

// Message is the plaintext XML WeChat pushes to an Official Account callback
// (WECHAT.md §1.3) or WeCom pushes to an app callback (§3.1). Optional fields
// that do not belong to MsgType are not written.
type Message struct {
	ToUserName   string // OA: original id gh_…; WeCom: corpid
	FromUserName string // OA: the user's OpenID; WeCom: member userid
	CreateTime   int64  // unix seconds
	MsgType      string // text, image, voice, video, shortvideo, location, link, event
	MsgID        int64  // messages only; events carry none
	AgentID      int64  // WeCom only; written last when non-zero

	Content string // text
	// BizMsgMenuID is the id of the clicked msgmenu item; written bare (not
	// CDATA) like WeChat does, since silenceper parses it as int64.
	BizMsgMenuID string
	PicURL       string // image
	MediaID      string // image, voice, video
	Format       string // voice: amr/speex
	Recognition  string // voice ASR result, when enabled
	ThumbMediaID string // video
	LocationX    float64
	LocationY    float64
	Scale        int
	Label        string
	Title        string // link
	Description  string // link
	URL          string // link

	Event     string // subscribe, unsubscribe, SCAN, LOCATION, CLICK, VIEW, …
	EventKey  string
	Ticket    string // QR scan
	Latitude  float64
	Longitude float64
	Precision float64
	MenuID    string // VIEW
}

// XML renders the message exactly as WeChat would push it in plaintext mode.
func (m *Message) XML() []byte {
	var w xmlWriter
	w.open()
	m.writeFields(&w)
	w.close()
	return w.bytes()
}

func (m *Message) writeFields(w *xmlWriter) {
	w.str("ToUserName", m.ToUserName)
	w.str("FromUserName", m.FromUserName)
	w.num("CreateTime", m.CreateTime)
	w.str("MsgType", m.MsgType)
	switch m.MsgType {
	case "text":
		w.str("Content", m.Content)
		if m.BizMsgMenuID != "" {
			w.b.WriteString("<bizmsgmenuid>" + m.BizMsgMenuID + "</bizmsgmenuid>")
		}
	case "image":
		w.str("PicUrl", m.PicURL)
		w.str("MediaId", m.MediaID)
	case "voice":
		w.str("MediaId", m.MediaID)
		w.str("Format", m.Format)
		if m.Recognition != "" {
			w.str("Recognition", m.Recognition)
		}
	case "video", "shortvideo":
		w.str("MediaId", m.MediaID)
		w.str("ThumbMediaId", m.ThumbMediaID)
	case "location":
		w.flt("Location_X", m.LocationX)
		w.flt("Location_Y", m.LocationY)
		w.num("Scale", int64(m.Scale))
		w.str("Label", m.Label)
	case "link":
		w.str("Title", m.Title)
		w.str("Description", m.Description)
		w.str("Url", m.URL)
	case "event":
		w.str("Event", m.Event)
		w.str("EventKey", m.EventKey)
		if m.Ticket != "" {
			w.str("Ticket", m.Ticket)
		}
		if m.Event == "LOCATION" {
			w.flt("Latitude", m.Latitude)
			w.flt("Longitude", m.Longitude)
			w.flt("Precision", m.Precision)
		}
		if m.MenuID != "" {
			w.str("MenuId", m.MenuID)
		}
	}
	if m.MsgType != "event" {
		w.num("MsgId", m.MsgID)
	}
	if m.AgentID != 0 {
		w.num("AgentID", m.AgentID)
	}
}

// Interaction reports which customer-service window this push opens for the
// user, following WECHAT.md §2.1: ordinary messages give 5/48 h; follow,
// QR scans and click/scancode menu events give 3/1 min; a msgmenu click (text
// with bizmsgmenuid) explicitly gives nothing.
func (m *Message) Interaction() Interaction {
	if m.MsgType != "event" {
		if m.BizMsgMenuID != "" {
			return InteractNone
		}
		return InteractMessage
	}
	switch m.Event {
	case "subscribe":
		if strings.HasPrefix(m.EventKey, "qrscene_") {
			return InteractScan
		}
		return InteractFollow
	case "SCAN":
		return InteractScan
	case "CLICK", "scancode_push", "scancode_waitmsg":
		return InteractClick
	case "unsubscribe":
		return InteractUnsubscribe
	}
	return InteractNone
}
