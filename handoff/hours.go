package handoff

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"kefu/conv"
)

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// openAt reports whether the human desk of store is open at t. Hours and
// holidays are inherited from the nearest ancestor that sets them, so a
// brand can set them once. No hours anywhere means always open.
func openAt(tree *conv.StoreTree, store conv.StoreID, t time.Time, loc *time.Location) (bool, error) {
	if tree == nil {
		return true, nil
	}
	t = t.In(loc)
	var hours map[string]string
	var holidays []string
	ids := append([]conv.StoreID{store}, tree.Ancestors(store)...)
	for _, id := range ids {
		n, ok := tree.Node(id)
		if !ok {
			continue
		}
		if hours == nil && len(n.Hours) > 0 {
			hours = n.Hours
		}
		if holidays == nil && len(n.Holidays) > 0 {
			holidays = n.Holidays
		}
	}
	if slices.Contains(holidays, t.Format("2006-01-02")) {
		return false, nil
	}
	if len(hours) == 0 {
		return true, nil
	}
	for days, span := range hours {
		in, err := dayMatches(days, t.Weekday())
		if err != nil {
			return false, err
		}
		if !in {
			continue
		}
		from, to, err := parseSpan(span)
		if err != nil {
			return false, err
		}
		m := t.Hour()*60 + t.Minute()
		if m >= from && m < to {
			return true, nil
		}
	}
	return false, nil
}

// dayMatches reads "mon-fri", "sat-sun", "mon,wed", "daily" or "*".
func dayMatches(spec string, d time.Weekday) (bool, error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if spec == "daily" || spec == "*" {
		return true, nil
	}
	for _, part := range strings.Split(spec, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		from, ok1 := weekdays[a]
		to := from
		ok2 := true
		if isRange {
			to, ok2 = weekdays[b]
		}
		if !ok1 || !ok2 {
			return false, fmt.Errorf("bad weekday spec %q (want e.g. mon-fri, sat-sun, daily)", spec)
		}
		for w := from; ; w = (w + 1) % 7 {
			if w == d {
				return true, nil
			}
			if w == to {
				break
			}
		}
	}
	return false, nil
}

// parseSpan reads "09:00-21:00" into minutes of the day.
func parseSpan(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad hours %q (want HH:MM-HH:MM)", s)
	}
	pa, err1 := time.Parse("15:04", strings.TrimSpace(a))
	pb, err2 := time.Parse("15:04", strings.TrimSpace(b))
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad hours %q (want HH:MM-HH:MM)", s)
	}
	from, to = pa.Hour()*60+pa.Minute(), pb.Hour()*60+pb.Minute()
	if b == "24:00" {
		to = 24 * 60
	}
	return from, to, nil
}
