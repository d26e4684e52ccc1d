package surveys

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ReplyKind classifies a customer's message while a survey waits for a score.
type ReplyKind int

// Reply kinds, from the parser's point of view.
const (
	// ReplyOther is neither a score nor clearly a question ("嗯", "好的",
	// "8.5"): the survey asks once more, then lets go.
	ReplyOther ReplyKind = iota
	// ReplyScore carries an integer 0–10.
	ReplyScore
	// ReplyOutOfRange is a number the customer meant as a score but outside
	// 0–10 ("11分", "100"); it is never clamped into the scale.
	ReplyOutOfRange
	// ReplyQuestion is clearly a new question or request: the conversation
	// reopens and the message goes to the bot.
	ReplyQuestion
	// ReplyOptOut asks for no more surveys ("退订").
	ReplyOptOut
)

// String names the kind for logs and test failures.
func (k ReplyKind) String() string {
	switch k {
	case ReplyScore:
		return "score"
	case ReplyOutOfRange:
		return "out_of_range"
	case ReplyQuestion:
		return "question"
	case ReplyOptOut:
		return "opt_out"
	}
	return "other"
}

// Parsed is what ParseReply found in a message.
type Parsed struct {
	Kind ReplyKind
	// Score is set for ReplyScore.
	Score int
	// Comment is the rest of a message that also carried a score
	// ("3分，等太久了" → "等太久了"); it answers the follow-up question.
	Comment string
	// RestIsQuestion is set when the text after the score is a new question
	// ("9分，请问几点关门？"): the score counts and the question goes to the bot.
	RestIsQuestion bool
}

// DefaultOptOutWords are the messages that mean "no more surveys".
var DefaultOptOutWords = []string{"退订", "td", "t", "退订调查", "取消订阅", "不要再发", "不要再发了", "别再发了", "别发了", "不要发了", "拒收", "不再接收", "unsubscribe", "stop"}

// digitWords maps the Chinese numerals a customer types for a score.
var digitWords = map[rune]int{'零': 0, '〇': 0, '○': 0, '一': 1, '壹': 1, '二': 2, '两': 2, '贰': 2, '三': 3, '叁': 3,
	'四': 4, '肆': 4, '五': 5, '伍': 5, '六': 6, '陆': 6, '七': 7, '柒': 7, '八': 8, '捌': 8, '九': 9, '玖': 9, '十': 10, '拾': 10}

// fillers may surround a bare score without changing its meaning.
const fillers = "吧啊呀哦喔了的呢嘛啦哈嗯额呃唉哎诶就我给打评选个可以分数是为:：~～!！.。,，、 \t\n…-—_*+=^`'\"“”‘’()（）[]【】<>《》|/\\"

// trailers may follow a numeral that is a score ("八吧", "九!").
const trailers = "吧啊呀哦喔了的呢嘛啦哈~～!！.。,，、 \t\n…"

// questionMarkers make a message clearly a new question or request.
var questionMarkers = []string{"?", "？", "吗", "么", "怎么", "怎样", "如何", "为什么", "为啥", "什么", "啥", "哪", "几点", "几号", "多少", "多久",
	"能不能", "能否", "可不可以", "可以吗", "是否", "有没有", "请问", "咨询", "人工", "客服", "转接", "投诉", "退货", "退款", "换货", "发票", "地址", "营业", "订单", "快递", "物流", "查一下", "帮我", "我要", "我想", "想问"}

// Patterns over the normalised text (half-width, lower case, emoji codes gone).
var (
	// A number followed by 分, but not 分钟 / 分之 / 分店 / 分期 / 分享 / 分开…
	reNumFen = regexp.MustCompile(`(^|[^0-9.])(-?[0-9]+(?:\.[0-9]+)?)\s*分(钟|之|店|期|享|开|别|手|析|配|类|成|支|公司|行)?`)
	// 给/打/评 (个)? N — "给个8吧", "打9", "评10".
	reGiveNum = regexp.MustCompile(`(给|打|评|选|就)\s*(个|了)?\s*(-?[0-9]+(?:\.[0-9]+)?)`)
	// N/10, N分/10分, N out of 10.
	reOutOf  = regexp.MustCompile(`(-?[0-9]+(?:\.[0-9]+)?)\s*分?\s*(?:/|out of|of)\s*10\s*分?`)
	reNumber = regexp.MustCompile(`-?[0-9]+(?:\.[0-9]+)?`)
	// Words around a score that belong to it, not to the comment.
	reLead = regexp.MustCompile(`(我|就)?(给|打|评|选)?(个|了)?\s*$`)
	// Hedges before a score are not a comment ("我觉得7分吧").
	reHedge = regexp.MustCompile(`^\s*(我|那)?(觉得|感觉|认为|想|大概|可能|应该|估计|就|那就|的话|嗯|额|呃|有)*\s*$`)
	// A comment that only repeats the score ("8分8分", "10分满分").
	reEcho = regexp.MustCompile(`^(满分|[0-9]+\s*分?|\s)+$`)
	// "一分都不想给", "不给分": a refusal, not a score.
	reRefuse = regexp.MustCompile(`分(都|也)不|不(想)?给分|负分`)
	reTrail  = regexp.MustCompile(`^\s*(分)?(吧|啊|呀|哦|啦|了)*`)
	// WeChat emoji codes: [微笑], /::) and friends.
	reEmojiCode = regexp.MustCompile(`\[[\p{Han}a-zA-Z]{1,6}\]|/:[^\s]{1,6}`)
	// 满分10分 / 满分是十分 describes the scale, not a score.
	reScale = regexp.MustCompile(`满分(是|为)?\s*(10|十)\s*分?[,，。.!！]?`)
	// 1到10 / 0-10 / 0～10 describes the scale too ("0到10我给9").
	reRange = regexp.MustCompile(`(^|[^0-9])[01]\s*(到|至|-|~)\s*10\s*分?`)
	// "7到8分", "8或9": two candidate scores, none forced.
	reTwo = regexp.MustCompile(`[0-9]+\s*(到|至|-|~|或者|或|和|、|,)\s*[0-9]+`)
)

// normalize folds full-width forms to ASCII, lower-cases and drops WeChat
// emoji codes, so "１０分！" and "10分!" parse alike.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\u3000':
			r = ' '
		case r >= '！' && r <= '～':
			r = r - '！' + '!'
		}
		b.WriteRune(unicode.ToLower(r))
	}
	out := reEmojiCode.ReplaceAllString(b.String(), " ")
	// Emoji and symbols carry no score.
	out = strings.Map(func(r rune) rune {
		if r >= 0x1F000 || (r >= 0x2600 && r <= 0x27BF) || r == '\uFE0F' || r == '\u200d' {
			return -1
		}
		return r
	}, out)
	return strings.TrimSpace(out)
}

// cnToArabic rewrites Chinese-numeral scores as digits where they are
// scores: a bare numeral ("九"), one followed by 分 ("九分", "两分") or after
// 给/打 ("给个八"). Two-numeral forms like "十一" and "二十" become 11 and 20
// so the caller sees them as out of range. "十分" followed by an adjective
// ("十分满意") is the adverb "very", not a score, and is left alone.
func cnToArabic(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i := 0; i < len(rs); i++ {
		if _, ok := digitWords[rs[i]]; !ok {
			b.WriteRune(rs[i])
			continue
		}
		// Take a run of numerals (at most 3: "二十一").
		j := i
		for j < len(rs) && j-i < 3 {
			if _, ok := digitWords[rs[j]]; !ok {
				break
			}
			j++
		}
		run := rs[i:j]
		n, ok := cnValue(run)
		prev, next := rune(0), rune(0)
		if i > 0 {
			prev = rs[i-1]
		}
		if j < len(rs) {
			next = rs[j]
		}
		var after rune
		if j+1 < len(rs) {
			after = rs[j+1]
		}
		scoreLike := next == 0 || next == '分' || strings.ContainsRune(trailers, next) || strings.ContainsRune("给打评选就", prev) ||
			(prev == '个' && i >= 2 && strings.ContainsRune("给打", rs[i-2]))
		// "十分满意", "十分感谢": 十分 as an adverb.
		if len(run) == 1 && run[0] == '十' && next == '分' && after != 0 && unicode.Is(unicode.Han, after) && !strings.ContainsRune("吧啊呀哦了的呢嘛啦哈", after) {
			scoreLike = false
		}
		// "一下", "一点", "一直", "一样": the numeral is part of a word.
		if next != 0 && unicode.Is(unicode.Han, next) && next != '分' && !strings.ContainsRune(trailers, next) {
			scoreLike = false
		}
		if prev != 0 && unicode.Is(unicode.Han, prev) && !strings.ContainsRune("给打评选就个是为分我嗯额呃哦", prev) {
			// "第一", "统一", "星期一": part of a word before it.
			scoreLike = false
		}
		if !ok || !scoreLike {
			b.WriteString(string(run))
			i = j - 1
			continue
		}
		b.WriteString(" " + strconv.Itoa(n))
		i = j - 1
	}
	return b.String()
}

// cnValue evaluates 1–3 Chinese numerals: 九 → 9, 十 → 10, 十一 → 11,
// 二十 → 20, 二十一 → 21. Other runs ("九九") are not numbers.
func cnValue(run []rune) (int, bool) {
	d := func(r rune) int { return digitWords[r] }
	switch len(run) {
	case 1:
		return d(run[0]), true
	case 2:
		switch {
		case d(run[0]) == 10 && d(run[1]) < 10:
			return 10 + d(run[1]), true
		case d(run[0]) < 10 && d(run[1]) == 10:
			return d(run[0]) * 10, true
		}
	case 3:
		if d(run[0]) < 10 && d(run[1]) == 10 && d(run[2]) < 10 {
			return d(run[0])*10 + d(run[2]), true
		}
	}
	return 0, false
}

// isQuestion reports whether text is clearly a new question or request.
func isQuestion(text string) bool {
	for _, m := range questionMarkers {
		if strings.Contains(text, m) {
			return true
		}
	}
	return false
}

// onlyFillers reports whether s has nothing but filler characters.
func onlyFillers(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(fillers, r) {
			return false
		}
	}
	return true
}

// cleanComment trims the punctuation that separated a score from its comment.
func cleanComment(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
	})
}

// ParseReply reads a customer's reply to the 0–10 question. It accepts
// Arabic and full-width digits, Chinese numerals (零…十), "N分", "满分",
// "给个8吧", "10分!" and a score followed by a comment; it never forces an
// ambiguous or out-of-range reply into the scale. optOut lists the exact
// messages that mean "no more surveys" (nil: DefaultOptOutWords).
func ParseReply(text string, optOut []string) Parsed {
	if optOut == nil {
		optOut = DefaultOptOutWords
	}
	raw := text
	if !utf8.ValidString(raw) {
		raw = strings.ToValidUTF8(raw, " ")
	}
	n := normalize(raw)
	if n == "" {
		return Parsed{Kind: ReplyOther}
	}
	bare := strings.Trim(n, fillers)
	trimmed := cleanComment(n)
	for _, w := range optOut {
		if w = strings.ToLower(w); bare == w || trimmed == w {
			return Parsed{Kind: ReplyOptOut}
		}
	}
	// "满分" alone (or with fillers) is 10; as a description of the scale
	// ("满分10分我给8") it is removed before looking for the score.
	s := reScale.ReplaceAllString(n, " ")
	s = reRange.ReplaceAllString(s, " ")
	if strings.Contains(s, "满分") {
		rest := strings.Replace(s, "满分", " ", 1)
		if !reNumber.MatchString(cnToArabic(rest)) {
			return withRest(10, rest)
		}
	}
	s = cnToArabic(s)
	// Strong signals first: "N分" (not 分钟), "给N", "N/10".
	if m := reOutOf.FindStringSubmatchIndex(s); m != nil {
		return scoreFrom(s, s[m[2]:m[3]], m[0], m[1])
	}
	if reTwo.MatchString(s) || reRefuse.MatchString(s) {
		return ambiguous(s)
	}
	var cands [][]int
	values := map[string]bool{}
	for _, m := range reNumFen.FindAllStringSubmatchIndex(s, -1) {
		if m[6] < 0 { // no disqualifying suffix (分钟, 分店…)
			cands = append(cands, m)
			values[s[m[4]:m[5]]] = true
		}
	}
	switch {
	case len(values) > 1:
		return ambiguous(s)
	case len(cands) == 1:
		m := cands[0]
		return scoreFrom(s, s[m[4]:m[5]], m[4], m[1])
	}
	if m := reGiveNum.FindStringSubmatchIndex(s); m != nil {
		if len(uniqueNumbers(s)) > 1 {
			return ambiguous(s)
		}
		return scoreFrom(s, s[m[6]:m[7]], m[0], m[1])
	}
	nums := reNumber.FindAllStringIndex(s, -1)
	if len(nums) == 1 {
		before, after := s[:nums[0][0]], s[nums[0][1]:]
		if onlyFillers(before) && onlyFillers(after) {
			return scoreFrom(s, s[nums[0][0]:nums[0][1]], nums[0][0], nums[0][1])
		}
		// "9 服务很好": a number first, then words, no question.
		if onlyFillers(before) && !isQuestion(after) && startsWithSeparator(after) {
			return scoreFrom(s, s[nums[0][0]:nums[0][1]], nums[0][0], nums[0][1])
		}
	}
	if isQuestion(s) {
		return Parsed{Kind: ReplyQuestion}
	}
	if utf8.RuneCountInString(bare) >= 25 {
		// A long message without a score is a new conversation, not an answer.
		return Parsed{Kind: ReplyQuestion}
	}
	return Parsed{Kind: ReplyOther}
}

// startsWithSeparator reports whether s starts with a space or punctuation,
// so "9 很好" counts but "3号店" does not.
func startsWithSeparator(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r != utf8.RuneError && (unicode.IsSpace(r) || unicode.IsPunct(r))
}

func uniqueNumbers(s string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range reNumber.FindAllString(s, -1) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// ambiguous is a reply with several candidate numbers ("7到8分", "8或9"):
// it is not forced into a score.
func ambiguous(s string) Parsed {
	if isQuestion(s) {
		return Parsed{Kind: ReplyQuestion}
	}
	return Parsed{Kind: ReplyOther}
}

func scoreFrom(s, num string, start, end int) Parsed {
	if strings.Contains(num, ".") || strings.HasPrefix(num, "-") {
		f, err := strconv.ParseFloat(num, 64)
		if err == nil && (f < 0 || f > 10) {
			return Parsed{Kind: ReplyOutOfRange}
		}
		return Parsed{Kind: ReplyOther} // 8.5: not an integer score
	}
	v, err := strconv.Atoi(num)
	if err != nil || v > 10 {
		return Parsed{Kind: ReplyOutOfRange}
	}
	before := reLead.ReplaceAllString(s[:start], "")
	if reHedge.MatchString(before) {
		before = ""
	}
	after := reTrail.ReplaceAllString(s[end:], "")
	return withRest(v, before+" "+after)
}

// withRest builds a score result whose leftover text is the comment.
func withRest(v int, rest string) Parsed {
	p := Parsed{Kind: ReplyScore, Score: v}
	c := cleanComment(rest)
	if c == "" || onlyFillers(c) || reEcho.MatchString(c) {
		return p
	}
	if isQuestion(c) && !strings.ContainsAny(c, "慢久差烂糟失望不满") {
		p.RestIsQuestion = true
		return p
	}
	p.Comment = c
	return p
}
