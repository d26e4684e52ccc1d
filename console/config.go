package console

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"kefu/conv"
)

// Defaults.
const (
	DefaultSessionTTL   = 12 * time.Hour
	DefaultMaxChats     = 5
	DefaultLoginLockout = 10 // failed logins per user within LoginWindow
	LoginWindow         = 15 * time.Minute
	// PasswordCost is the bcrypt cost of HashPassword.
	PasswordCost = 12
	minPassword  = 8
)

// User is one console login (the `console.users` list).
type User struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash (kefu console hash-password / HashPassword).
	PasswordHash string         `yaml:"password_hash"`
	Role         conv.Role      `yaml:"role"`
	Stores       []conv.StoreID `yaml:"stores"`
	Skills       []string       `yaml:"skills"`
	// MaxChats caps concurrent chats (agents, supervisors); 0 = 5.
	MaxChats int `yaml:"max_chats"`
	// Display is the name shown to customers in the greeting.
	Display string `yaml:"display"`
	// Number is the work number (工号) in the greeting.
	Number string `yaml:"number"`
	// WeComUserID is the servicer userid for WeChat KF sessions.
	WeComUserID string `yaml:"wecom_userid"`
}

// Config is the `console:` section.
type Config struct {
	// Listen is the console's own listener, e.g. 127.0.0.1:8090 ("" = off).
	Listen string `yaml:"listen"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookie marks the session cookie Secure (serve behind HTTPS).
	SecureCookie bool `yaml:"secure_cookie"`
	// LoginLockout is how many failed logins lock a user for LoginWindow.
	LoginLockout int    `yaml:"login_lockout"`
	Users        []User `yaml:"users"`
}

// DefaultConfig returns the defaults (no users: nobody can log in).
func DefaultConfig() Config {
	return Config{SessionTTL: DefaultSessionTTL, LoginLockout: DefaultLoginLockout}
}

// Validate checks c, naming the offending key path (console.…).
func (c Config) Validate() error {
	var errs []error
	if c.SessionTTL <= 0 {
		errs = append(errs, fmt.Errorf("console.session_ttl: must be positive, got %s", c.SessionTTL))
	}
	if c.LoginLockout <= 0 {
		errs = append(errs, fmt.Errorf("console.login_lockout: must be positive, got %d", c.LoginLockout))
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		path := fmt.Sprintf("console.users[%d]", i)
		switch {
		case strings.TrimSpace(u.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", path))
		case strings.ContainsAny(u.Name, " /\\:{}\"'<>"):
			errs = append(errs, fmt.Errorf("%s.name: %q has characters not allowed in a login", path, u.Name))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("%s.name: duplicate user %q", path, u.Name))
		}
		seen[u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("%s.password_hash: not a bcrypt hash (use `kefu console hash-password`)", path))
		}
		switch u.Role {
		case conv.RoleAgent, conv.RoleSupervisor, conv.RoleStoreManager, conv.RoleAdmin:
		default:
			errs = append(errs, fmt.Errorf("%s.role: must be agent, supervisor, store_manager or admin, got %q", path, u.Role))
		}
		if u.Role == conv.RoleStoreManager && len(u.Stores) == 0 {
			errs = append(errs, fmt.Errorf("%s.stores: a store_manager needs at least one store", path))
		}
		if u.MaxChats < 0 {
			errs = append(errs, fmt.Errorf("%s.max_chats: must not be negative, got %d", path, u.MaxChats))
		}
	}
	return errors.Join(errs...)
}

// Agents returns the users who take chats (agents and supervisors) as the
// handoff desk's roster.
func (c Config) Agents() []conv.AgentProfile {
	var out []conv.AgentProfile
	for _, u := range c.Users {
		if u.Role != conv.RoleAgent && u.Role != conv.RoleSupervisor {
			continue
		}
		max := u.MaxChats
		if max == 0 {
			max = DefaultMaxChats
		}
		out = append(out, conv.AgentProfile{Name: u.Name, Display: u.Display, Number: u.Number, Role: u.Role,
			Stores: u.Stores, Skills: u.Skills, MaxChats: max, WeComUserID: u.WeComUserID})
	}
	return out
}

// HashPassword returns the bcrypt hash to put in console.users[].password_hash.
func HashPassword(password string) (string, error) {
	if len([]rune(password)) < minPassword {
		return "", fmt.Errorf("%w: password must have at least %d characters", conv.ErrBadInput, minPassword)
	}
	if len(password) > 72 {
		return "", fmt.Errorf("%w: password must be at most 72 bytes (bcrypt limit)", conv.ErrBadInput)
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	return string(b), err
}

func (c Config) user(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}
