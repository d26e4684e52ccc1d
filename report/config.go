package report

import (
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // days are cut in the stores' zone even on images without zoneinfo
)

// Defaults of Config, with their units.
const (
	DefaultLocation            = "Asia/Shanghai"
	DefaultServiceLevelSeconds = 20
	DefaultServiceLevelTarget  = 0.80
	DefaultRepeatWindow        = 24 * time.Hour
	DefaultContactIdle         = 30 * time.Minute
	DefaultStaleAfter          = 24 * time.Hour
	DefaultCaseDeadline        = 24 * time.Hour
	DefaultPromoterMin         = 9
	DefaultDetractorMax        = 6
	DefaultCSATMinScore        = 7
	DefaultRetentionDays       = 90
	DefaultKeepContacts        = 35 * 24 * time.Hour
	DefaultKeepDays            = 400
	DefaultRefreshInterval     = 5 * time.Second
	DefaultPageSize            = 5000
)

// Config holds the KPI parameters and the report's operating settings.
// KPI parameters become part of the KPI definitions shown next to numbers.
type Config struct {
	// Location is the IANA zone in which days, weeks and months are cut.
	Location string `yaml:"location"`
	// ServiceLevelSeconds is Y in "X% picked up within Y s".
	ServiceLevelSeconds int `yaml:"service_level_seconds"`
	// ServiceLevelTarget is X (0..1), shown as the goal on charts and alerts.
	ServiceLevelTarget float64 `yaml:"service_level_target"`
	// RepeatWindow: a new contact from the same customer within this time of
	// the previous contact's end makes that contact a repeat (not FCR).
	RepeatWindow time.Duration `yaml:"repeat_window"`
	// ContactIdle ends a bot-only contact (and splits contacts without Conv).
	ContactIdle time.Duration `yaml:"contact_idle"`
	// StaleAfter ends a handed-off contact that never got a closed/abandoned event.
	StaleAfter time.Duration `yaml:"stale_after"`
	// CaseDeadline is the callback deadline of a detractor case without
	// Data["deadline"].
	CaseDeadline time.Duration `yaml:"case_deadline"`
	// PromoterMin and DetractorMax split NPS scores (9 and 6 by default).
	PromoterMin  int `yaml:"promoter_min"`
	DetractorMax int `yaml:"detractor_max"`
	// CSATMinScore: without a CSAT answer, an NPS score at or above this
	// counts as satisfied.
	CSATMinScore int `yaml:"csat_min_score"`
	// RetentionDays is how many days of events the retention service keeps
	// in the log (aggregates are kept regardless).
	RetentionDays int `yaml:"retention_days"`
	// KeepDays is how many days of per-bucket counters are kept (the
	// default covers year-over-year comparisons); older days are dropped.
	KeepDays int `yaml:"keep_days"`
	// KeepContacts is how long ended contacts and closed cases are kept for
	// late events (surveys, cases) and drill-down.
	KeepContacts time.Duration `yaml:"keep_contacts"`
	// RefreshInterval is how often Run folds new events in.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// PageSize is the number of records read and persisted per step.
	PageSize int `yaml:"page_size"`
}

// DefaultConfig returns the defaults (80% in 20 s, 24 h repeat window, …).
func DefaultConfig() Config {
	return Config{
		Location:            DefaultLocation,
		ServiceLevelSeconds: DefaultServiceLevelSeconds,
		ServiceLevelTarget:  DefaultServiceLevelTarget,
		RepeatWindow:        DefaultRepeatWindow,
		ContactIdle:         DefaultContactIdle,
		StaleAfter:          DefaultStaleAfter,
		CaseDeadline:        DefaultCaseDeadline,
		PromoterMin:         DefaultPromoterMin,
		DetractorMax:        DefaultDetractorMax,
		CSATMinScore:        DefaultCSATMinScore,
		RetentionDays:       DefaultRetentionDays,
		KeepDays:            DefaultKeepDays,
		KeepContacts:        DefaultKeepContacts,
		RefreshInterval:     DefaultRefreshInterval,
		PageSize:            DefaultPageSize,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	var errs []error
	if _, err := time.LoadLocation(c.Location); err != nil || c.Location == "" {
		errs = append(errs, fmt.Errorf("report.location: unknown zone %q", c.Location))
	}
	if c.ServiceLevelSeconds <= 0 {
		errs = append(errs, errors.New("report.service_level_seconds: must be > 0"))
	}
	if c.ServiceLevelTarget <= 0 || c.ServiceLevelTarget > 1 {
		errs = append(errs, errors.New("report.service_level_target: must be in (0, 1]"))
	}
	if c.RepeatWindow <= 0 {
		errs = append(errs, errors.New("report.repeat_window: must be > 0"))
	}
	if c.ContactIdle <= 0 {
		errs = append(errs, errors.New("report.contact_idle: must be > 0"))
	}
	if c.StaleAfter < c.ContactIdle {
		errs = append(errs, errors.New("report.stale_after: must be >= contact_idle"))
	}
	if c.CaseDeadline <= 0 {
		errs = append(errs, errors.New("report.case_deadline: must be > 0"))
	}
	if c.DetractorMax < 0 || c.PromoterMin > 10 || c.DetractorMax >= c.PromoterMin {
		errs = append(errs, errors.New("report.detractor_max/promoter_min: need 0 <= detractor_max < promoter_min <= 10"))
	}
	if c.CSATMinScore < 0 || c.CSATMinScore > 10 {
		errs = append(errs, errors.New("report.csat_min_score: must be in 0..10"))
	}
	if c.RetentionDays < 1 {
		errs = append(errs, errors.New("report.retention_days: must be >= 1"))
	}
	if c.KeepDays < 31 {
		errs = append(errs, errors.New("report.keep_days: must be >= 31"))
	}
	if c.KeepContacts < c.RepeatWindow {
		errs = append(errs, errors.New("report.keep_contacts: must be >= repeat_window"))
	}
	if c.RefreshInterval <= 0 {
		errs = append(errs, errors.New("report.refresh_interval: must be > 0"))
	}
	if c.PageSize < 1 || c.PageSize > 100000 {
		errs = append(errs, errors.New("report.page_size: must be in 1..100000"))
	}
	return errors.Join(errs...)
}

func (c Config) location() *time.Location {
	loc, err := time.LoadLocation(c.Location)
	if err != nil {
		return time.UTC
	}
	return loc
}
