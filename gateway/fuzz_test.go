package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"kefu/conv"
)

func FuzzParseWeChatXML(f *testing.F) {
	for _, s := range []string{
		`<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId></xml>`,
		`<?xml version="1.0"?><xml><A>1 &lt; 2 &#x4e2d;</A><B/><C><D>nested</D></C></xml>`,
		`<xml><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[abc]]></PicMd5Sum></item></PicList></SendPicsInfo></xml>`,
		`<xml><Encrypt><![CDATA[abc]]]]><![CDATA[>def]]></Encrypt></xml>`,
		`<xml>`, `</xml>`, `<xml><A>`, ``,
	} {
		f.Add([]byte(s))
	}
	ch := &channel{cfg: ChannelConfig{Name: "demo", Type: conv.ChannelWeChatOA, AppID: "wx1"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := parseWeChatXML(b)
		if err != nil {
			return
		}
		if fl.len() > maxXMLFields || fl.n > inlineXMLFields || len(fl.more) > 0 && fl.n < inlineXMLFields {
			t.Fatalf("inconsistent fields: %d inline, %d more", fl.n, len(fl.more))
		}
		m, err := oaMessage(ch, fl, b, time.Unix(0, 0))
		if err == nil && (m.ID == "" || m.Customer == "") {
			t.Fatalf("accepted message without id/customer: %+v", m)
		}
	})
}

func FuzzParseJSONMessage(f *testing.F) {
	f.Add([]byte(`{"message_id":"m1","user_id":"u","type":"text","text":"你好"}`))
	f.Add([]byte(`{"message_id":"m1","user_id":"u","type":"event","event":"open"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseJSONMessage(b)
		if err != nil {
			return
		}
		if m.MessageID == "" || m.UserID == "" {
			t.Fatalf("accepted invalid message %+v", m)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	k, err := newCipherKey(testOAKey, testAppID)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.encrypt([]byte("<xml/>")))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		msg, err := k.decrypt(s)
		if err == nil && msg == nil {
			t.Fatal("nil message without error")
		}
	})
}

func TestParseWeChatXML_Table(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]string
		bad  bool
	}{
		{in: `<xml><A><![CDATA[x]]></A><B>2</B></xml>`, want: map[string]string{"A": "x", "B": "2"}},
		{in: `  <?xml version="1.0" encoding="utf-8"?>` + "\n" + `<xml>` + "\n" + ` <A>a &amp; b</A></xml>` + "\n", want: map[string]string{"A": "a & b"}},
		{in: `<xml><A><![CDATA[]]]]><![CDATA[>]]></A></xml>`, want: map[string]string{"A": "]]>"}},
		{in: `<xml><P><item><M>1</M></item><item><M>2</M></item></P></xml>`, want: map[string]string{"M": "1"}},
		{in: `<xml><A>x</B></xml>`, bad: true},
		{in: `<foo><A>x</A></foo>`, bad: true},
		{in: `<xml><A>&bogus;</A></xml>`, bad: true},
		{in: `<xml><A>x</A></xml>trailing`, bad: true},
		{in: `<xml><A>x</A>`, bad: true},
	}
	for _, c := range cases {
		f, err := parseWeChatXML([]byte(c.in))
		if c.bad {
			if err == nil {
				t.Errorf("%q: want error", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		for k, v := range c.want {
			if got := f.Get(k); got != v {
				t.Errorf("%q: %s = %q, want %q", c.in, k, got, v)
			}
		}
	}
}

// TestParseWeChatXML_ManyFields covers documents past the inline fields:
// every field is found, the first of a repeated name wins wherever it is,
// and more than maxXMLFields is refused.
func TestParseWeChatXML_ManyFields(t *testing.T) {
	doc := func(n int) []byte {
		var b strings.Builder
		b.WriteString("<xml>")
		for i := range n {
			fmt.Fprintf(&b, "<F%d>v%d</F%d>", i, i, i)
		}
		b.WriteString("<F3>late</F3><F20>late</F20></xml>")
		return []byte(b.String())
	}
	f, err := parseWeChatXML(doc(40))
	if err != nil {
		t.Fatal(err)
	}
	if f.len() != 42 || f.n != inlineXMLFields {
		t.Fatalf("len %d, inline %d", f.len(), f.n)
	}
	for _, i := range []int{0, 3, inlineXMLFields - 1, inlineXMLFields, 20, 39} {
		if got, want := f.Get(fmt.Sprintf("F%d", i)), fmt.Sprintf("v%d", i); got != want {
			t.Errorf("F%d = %q, want %q", i, got, want)
		}
	}
	if !f.Has("F39") || f.Has("F40") || f.Get("F40") != "" {
		t.Error("Has/Get past the last field")
	}
	if _, err := parseWeChatXML(doc(maxXMLFields - 2)); err != nil {
		t.Errorf("%d fields: %v", maxXMLFields, err)
	}
	if _, err := parseWeChatXML(doc(maxXMLFields - 1)); err == nil {
		t.Errorf("%d fields accepted", maxXMLFields+1)
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := DefaultConfig()
	ok.Channels = []ChannelConfig{{Name: "demo", Type: conv.ChannelWeChatOA, AppID: "wx1", AppSecret: "s", Token: "t", EncodingAESKey: testOAKey}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		key string
		mod func(*Config)
	}{
		{"gateway.passive_budget", func(c *Config) { c.PassiveBudget = 6 * time.Second }},
		{"gateway.max_body_bytes", func(c *Config) { c.MaxBodyBytes = 10 }},
		{"gateway.shards", func(c *Config) { c.Shards = 0 }},
		{"wechat.api_base", func(c *Config) { c.APIBase = "ftp://x" }},
		{"channels[0].encoding_aes_key", func(c *Config) { c.Channels[0].EncodingAESKey = "short" }},
		{"channels[0].type", func(c *Config) { c.Channels[0].Type = "telegram" }},
		{"channels[0].app_id", func(c *Config) { c.Channels[0].AppID = "notwx" }},
		{"channels[0].token", func(c *Config) { c.Channels[0].Token = "" }},
		{"channels[1].name", func(c *Config) { c.Channels = append(c.Channels, c.Channels[0]) }},
		{"channels[0].agent_id", func(c *Config) {
			c.Channels[0] = ChannelConfig{Name: "m", Type: conv.ChannelWeComApp, AppID: "ww1", AppSecret: "s", Token: "t", EncodingAESKey: testOAKey}
		}},
		{"channels[0].token", func(c *Config) { c.Channels[0] = ChannelConfig{Name: "j", Type: conv.ChannelJSON, Token: "short"} }},
	}
	for _, c := range cases {
		cfg := ok
		cfg.Channels = append([]ChannelConfig(nil), ok.Channels...)
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key+":") {
			t.Errorf("%s: got %v", c.key, err)
		}
	}
}
