package conv

import (
	"context"
	"fmt"
	"sort"
)

// StoreNode is a node of the store tree: the brand (root), a region, or a
// store. Managers are alerted for detractors of their node's stores, and
// overdue cases escalate from a store to its region, then to the brand (HQ).
type StoreNode struct {
	ID       StoreID     `yaml:"id" json:"id"`
	Name     string      `yaml:"name" json:"name"`
	Managers []Manager   `yaml:"managers" json:"managers,omitempty"`
	Children []StoreNode `yaml:"children" json:"children,omitempty"`
	// Opening is the store's opening time "HH:MM" (daily digest goes out before it).
	Opening string `yaml:"opening" json:"opening,omitempty"`
	// Hours are business hours per weekday for the human queue, e.g.
	// {"mon-fri": "09:00-21:00", "sat-sun": "10:00-18:00"}.
	Hours map[string]string `yaml:"hours" json:"hours,omitempty"`
	// Holidays are dates "2026-10-01" when the human queue is closed.
	Holidays []string `yaml:"holidays" json:"holidays,omitempty"`
}

// Manager is a person responsible for a node of the store tree.
type Manager struct {
	Name string `yaml:"name" json:"name"`
	// WeComUserID receives WeCom app messages.
	WeComUserID string `yaml:"wecom_userid" json:"wecom_userid,omitempty"`
	// RobotKey posts to the store group's WeCom robot (a secret).
	RobotKey string `yaml:"robot_key" json:"-"`
	// OpenID receives OA template messages.
	OpenID string `yaml:"openid" json:"openid,omitempty"`
	// Webhook receives a signed generic alert.
	Webhook string `yaml:"webhook" json:"webhook,omitempty"`
	Phone   string `yaml:"phone" json:"phone,omitempty"`
	// Login is the console user name of this manager.
	Login string `yaml:"login" json:"login,omitempty"`
}

// StoreTree indexes a brand → region → store tree.
type StoreTree struct {
	Root   StoreNode
	parent map[StoreID]StoreID
	nodes  map[StoreID]*StoreNode
}

// NewStoreTree indexes root and checks that ids are unique and non-empty.
func NewStoreTree(root StoreNode) (*StoreTree, error) {
	t := &StoreTree{Root: root, parent: map[StoreID]StoreID{}, nodes: map[StoreID]*StoreNode{}}
	var walk func(n *StoreNode, parent StoreID, path string) error
	walk = func(n *StoreNode, parent StoreID, path string) error {
		if n.ID == "" {
			return fmt.Errorf("%s.id: must not be empty", path)
		}
		if _, dup := t.nodes[n.ID]; dup {
			return fmt.Errorf("%s.id: duplicate store id %q", path, n.ID)
		}
		t.nodes[n.ID] = n
		if parent != "" {
			t.parent[n.ID] = parent
		}
		for i := range n.Children {
			if err := walk(&n.Children[i], n.ID, fmt.Sprintf("%s.children[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if root.ID == "" {
		return t, nil // no tree configured
	}
	if err := walk(&t.Root, "", "stores"); err != nil {
		return nil, err
	}
	return t, nil
}

// Node returns the node with id.
func (t *StoreTree) Node(id StoreID) (*StoreNode, bool) {
	n, ok := t.nodes[id]
	return n, ok
}

// Parent returns the parent of id ("" at the root or for unknown ids).
func (t *StoreTree) Parent(id StoreID) StoreID { return t.parent[id] }

// Ancestors returns id's parent, grandparent, … up to the root.
func (t *StoreTree) Ancestors(id StoreID) []StoreID {
	var out []StoreID
	for p := t.parent[id]; p != ""; p = t.parent[p] {
		out = append(out, p)
	}
	return out
}

// Within reports whether store is scope itself or below it.
func (t *StoreTree) Within(store, scope StoreID) bool {
	if store == scope {
		return true
	}
	for _, a := range t.Ancestors(store) {
		if a == scope {
			return true
		}
	}
	return false
}

// Leaves returns the stores (nodes without children) at or below scope, sorted.
func (t *StoreTree) Leaves(scope StoreID) []StoreID {
	var out []StoreID
	for id, n := range t.nodes {
		if len(n.Children) == 0 && t.Within(id, scope) {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Role is a console user's role.
type Role string

// Console roles, from least to most powerful.
const (
	RoleAgent        Role = "agent"
	RoleStoreManager Role = "store_manager"
	RoleSupervisor   Role = "supervisor"
	RoleAdmin        Role = "admin"
)

// Principal is the authenticated console user of a request.
type Principal struct {
	User string `json:"user"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Stores are the tree nodes the user may see (a region covers its stores);
	// empty with RoleAdmin or a supervisor at the root means all.
	Stores []StoreID `json:"stores"`
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p (set by the console's auth middleware).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// CanSee reports whether p may see data of store under tree.
func (p Principal) CanSee(tree *StoreTree, store StoreID) bool {
	if p.Role == RoleAdmin {
		return true
	}
	for _, s := range p.Stores {
		if tree != nil && tree.Within(store, s) || s == store {
			return true
		}
	}
	return false
}
