package gateway

import (
	"bytes"
	"errors"
	"strings"
)

// errBadXML is returned for bodies that are not a WeChat XML document.
var errBadXML = errors.New("malformed XML")

// maxXMLFields bounds how many fields one document may carry; WeChat's
// richest push has a few dozen, so more means garbage or an attack.
const maxXMLFields = 256

// xmlFields is a flat view of a WeChat push: <xml><Tag>value</Tag>…</xml>.
// WeChat documents are one level deep except a few events (SendPicsInfo,
// ScanCodeInfo, subscribe-message lists); nested elements are flattened with
// their leaf names ("PicList.item.PicMd5Sum" becomes "PicMd5Sum"), which is
// all the gateway needs, while the raw body is kept for unknown kinds.
//
// The first inlineXMLFields fields live in arrays inside the value, so a
// caller can keep it on its stack: the OA path parses two documents a
// request (envelope and message), and two heap views of slices were ≈5 %
// of the bytes a request allocated. Further fields go to more.
type xmlFields struct {
	n          int
	keys, vals [inlineXMLFields]string
	more       []xmlField
}

// xmlField is one field beyond the inline ones.
type xmlField struct{ k, v string }

// inlineXMLFields covers every common push (a text message has 6–8
// fields, the encrypted envelope 2–4).
const inlineXMLFields = 16

// len returns the number of fields.
func (f *xmlFields) len() int { return f.n + len(f.more) }

// Get returns the value of the first field named name ("" if absent).
func (f *xmlFields) Get(name string) string {
	v, _ := f.lookup(name)
	return v
}

// Has reports whether a field named name is present.
func (f *xmlFields) Has(name string) bool {
	_, ok := f.lookup(name)
	return ok
}

// lookup finds the first field named name: the inline ones, then more.
func (f *xmlFields) lookup(name string) (string, bool) {
	for i := range f.n {
		if f.keys[i] == name {
			return f.vals[i], true
		}
	}
	for _, kv := range f.more {
		if kv.k == name {
			return kv.v, true
		}
	}
	return "", false
}

// parseWeChatXML parses a flat WeChat XML document. It is a purpose-built
// scanner rather than encoding/xml because it runs on every request on the
// hot path (encoding/xml with reflection costs several times more), and
// because WeChat documents are a tiny, fixed subset of XML: an optional
// declaration, a root <xml> element, child elements holding text or CDATA.
func parseWeChatXML(b []byte) (*xmlFields, error) {
	f := new(xmlFields)
	if err := parseWeChatXMLInto(b, f); err != nil {
		return nil, err
	}
	return f, nil
}

// parseWeChatXMLInto is parseWeChatXML into f (empty), which the caller
// can keep on its stack.
func parseWeChatXMLInto(b []byte, f *xmlFields) error {
	p := xmlScanner{b: b}
	p.skipSpace()
	if p.hasPrefix("<?xml") {
		end := bytes.Index(p.b[p.i:], []byte("?>"))
		if end < 0 {
			return errBadXML
		}
		p.i += end + 2
		p.skipSpace()
	}
	name, selfClose, err := p.openTag()
	if err != nil {
		return err
	}
	if name != "xml" {
		return errBadXML
	}
	if selfClose {
		return nil
	}
	if err := p.children(f, "xml", 0); err != nil {
		return err
	}
	p.skipSpace()
	if p.i != len(p.b) {
		return errBadXML
	}
	return nil
}

type xmlScanner struct {
	b []byte
	i int
}

func (p *xmlScanner) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *xmlScanner) hasPrefix(s string) bool {
	return bytes.HasPrefix(p.b[p.i:], []byte(s))
}

// openTag reads "<name attr…>" or "<name/>" and returns the name.
func (p *xmlScanner) openTag() (string, bool, error) {
	if p.i >= len(p.b) || p.b[p.i] != '<' {
		return "", false, errBadXML
	}
	p.i++
	start := p.i
	for p.i < len(p.b) && isNameByte(p.b[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", false, errBadXML
	}
	name := string(p.b[start:p.i])
	// Attributes are not used by WeChat; skip to the end of the tag.
	for p.i < len(p.b) && p.b[p.i] != '>' {
		p.i++
	}
	if p.i >= len(p.b) {
		return "", false, errBadXML
	}
	selfClose := p.b[p.i-1] == '/'
	p.i++
	return name, selfClose, nil
}

const maxXMLDepth = 8

// children parses the content of element parent until its closing tag,
// appending leaf elements to f.
func (p *xmlScanner) children(f *xmlFields, parent string, depth int) error {
	if depth > maxXMLDepth {
		return errBadXML
	}
	for {
		p.skipSpace()
		if p.i >= len(p.b) {
			return errBadXML
		}
		if p.hasPrefix("</") {
			return p.closeTag(parent)
		}
		if p.hasPrefix("<!--") {
			end := bytes.Index(p.b[p.i:], []byte("-->"))
			if end < 0 {
				return errBadXML
			}
			p.i += end + 3
			continue
		}
		if p.b[p.i] != '<' {
			// Stray text between elements (e.g. mixed content): skip it.
			next := bytes.IndexByte(p.b[p.i:], '<')
			if next < 0 {
				return errBadXML
			}
			p.i += next
			continue
		}
		name, selfClose, err := p.openTag()
		if err != nil {
			return err
		}
		if selfClose {
			if err := f.add(name, ""); err != nil {
				return err
			}
			continue
		}
		// Leaf with text/CDATA, or an element with children.
		save := p.i
		p.skipSpace()
		if p.i < len(p.b) && p.b[p.i] == '<' && !p.hasPrefix("<![CDATA[") && !p.hasPrefix("</") {
			if err := p.children(f, name, depth+1); err != nil {
				return err
			}
			continue
		}
		p.i = save
		val, err := p.text()
		if err != nil {
			return err
		}
		if err := p.closeTag(name); err != nil {
			return err
		}
		if err := f.add(name, val); err != nil {
			return err
		}
	}
}

func (f *xmlFields) add(k, v string) error {
	switch {
	case f.n < inlineXMLFields:
		f.keys[f.n], f.vals[f.n] = k, v
		f.n++
	case f.len() >= maxXMLFields:
		return errBadXML
	default:
		f.more = append(f.more, xmlField{k, v})
	}
	return nil
}

// text reads character data and CDATA sections up to the next tag.
func (p *xmlScanner) text() (string, error) {
	var sb strings.Builder
	for p.i < len(p.b) {
		if p.hasPrefix("<![CDATA[") {
			p.i += len("<![CDATA[")
			end := bytes.Index(p.b[p.i:], []byte("]]>"))
			if end < 0 {
				return "", errBadXML
			}
			sb.Write(p.b[p.i : p.i+end])
			p.i += end + 3
			continue
		}
		if p.b[p.i] == '<' {
			break
		}
		next := bytes.IndexByte(p.b[p.i:], '<')
		if next < 0 {
			return "", errBadXML
		}
		s, err := unescapeXML(p.b[p.i : p.i+next])
		if err != nil {
			return "", err
		}
		sb.WriteString(s)
		p.i += next
	}
	return strings.TrimSpace(sb.String()), nil
}

func (p *xmlScanner) closeTag(name string) error {
	if !p.hasPrefix("</") {
		return errBadXML
	}
	p.i += 2
	if !bytes.HasPrefix(p.b[p.i:], []byte(name)) {
		return errBadXML
	}
	p.i += len(name)
	p.skipSpace()
	if p.i >= len(p.b) || p.b[p.i] != '>' {
		return errBadXML
	}
	p.i++
	return nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c == ':' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

var xmlEntities = map[string]string{"lt": "<", "gt": ">", "amp": "&", "quot": `"`, "apos": "'"}

// unescapeXML decodes the five predefined entities and numeric references.
func unescapeXML(b []byte) (string, error) {
	if bytes.IndexByte(b, '&') < 0 {
		return string(b), nil
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] != '&' {
			sb.WriteByte(b[i])
			continue
		}
		end := bytes.IndexByte(b[i:], ';')
		if end < 0 || end > 12 {
			return "", errBadXML
		}
		ent := string(b[i+1 : i+end])
		if v, ok := xmlEntities[ent]; ok {
			sb.WriteString(v)
		} else if len(ent) > 1 && ent[0] == '#' {
			var r int64
			base := int64(10)
			digits := ent[1:]
			if digits[0] == 'x' || digits[0] == 'X' {
				base, digits = 16, digits[1:]
			}
			if digits == "" {
				return "", errBadXML
			}
			for _, c := range digits {
				var d int64
				switch {
				case c >= '0' && c <= '9':
					d = int64(c - '0')
				case base == 16 && c >= 'a' && c <= 'f':
					d = int64(c-'a') + 10
				case base == 16 && c >= 'A' && c <= 'F':
					d = int64(c-'A') + 10
				default:
					return "", errBadXML
				}
				r = r*base + d
				if r > 0x10FFFF {
					return "", errBadXML
				}
			}
			sb.WriteRune(rune(r))
		} else {
			return "", errBadXML
		}
		i += end
	}
	return sb.String(), nil
}

// appendCDATA appends s as a CDATA section, splitting "]]>" so user text cannot
// break out of the section.
func appendCDATA(b []byte, s string) []byte {
	b = append(b, "<![CDATA["...)
	for {
		i := strings.Index(s, "]]>")
		if i < 0 {
			break
		}
		b = append(b, s[:i]...)
		b = append(b, "]]]]><![CDATA[>"...)
		s = s[i+3:]
	}
	b = append(b, s...)
	return append(b, "]]>"...)
}
