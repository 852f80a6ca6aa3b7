//! Message templates: `{{ first_name }}`, `{{ cart_url }}` and the
//! like, plus the tenant's custom traits as `{{ traits.plan }}`. The rule is
//! that a message never goes out with a blank where a name should be: a
//! template that names a variable nobody provides is refused when it is
//! saved ([`check`]), and rendering is strict, so a customer who lacks a
//! value the template needs makes [`render`] fail instead of printing
//! "Hi ,". Rendering uses minijinja with its default features off: no
//! filters, functions or template loading, only variable substitution and
//! the control flow a small business might use (`{% if company %}`).

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// The variables every template may use.
pub const STANDARD_VARS: [&str; 6] = [
    "first_name",
    "last_name",
    "company",
    "cart_url",
    "cart_total",
    "unsubscribe_url",
];

/// Custom traits live under this name, so they can never shadow a standard
/// variable.
const TRAITS: &str = "traits";

/// How rendered values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// HTML-escape every value: email bodies, so a customer named
    /// `<script>` stays text.
    Html,
    /// Leave values as they are: SMS and email subjects are plain text, where
    /// `&amp;` would show up literally.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template cannot be read: {message}; check the {{{{ }}}} and {{% %}} pairs")]
    Syntax { message: String },
    #[error("the template uses {{{{ {name} }}}}, which is not a known variable; use one of first_name, last_name, company, cart_url, cart_total, unsubscribe_url or traits.<custom trait>")]
    UnknownVariable { name: String },
    #[error("the template uses {{{{ {name} }}}}, but this customer has no value for it; add it to the customer or change the template")]
    MissingValue { name: String },
    #[error(
        "the template cannot be rendered: {message}; use plain {{{{ variable }}}} substitutions"
    )]
    Render { message: String },
}

/// The values one message is rendered with. Only the values present are
/// defined; a template that uses an absent one fails to render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    standard: BTreeMap<String, String>,
    traits: BTreeMap<String, String>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a standard variable (one of [`STANDARD_VARS`]); other names are
    /// ignored so a caller cannot smuggle in variables `check` never allowed.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        if STANDARD_VARS.contains(&name) {
            self.standard.insert(name.to_string(), value.into());
        }
        self
    }

    /// Sets a custom trait, used as `{{ traits.<name> }}`.
    pub fn with_trait(mut self, name: &str, value: impl Into<String>) -> Self {
        self.traits.insert(name.to_string(), value.into());
        self
    }

    fn to_value(&self) -> Value {
        let mut ctx: BTreeMap<String, Value> = self
            .standard
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let traits: BTreeMap<String, Value> = self
            .traits
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ctx.insert(TRAITS.to_string(), Value::from(traits));
        Value::from(ctx)
    }
}

fn environment(escape: Escape) -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(move |_| match escape {
        Escape::Html => AutoEscape::Html,
        Escape::None => AutoEscape::None,
    });
    env
}

/// Save-time check: the template parses, uses only standard variables and
/// `traits.<name>` for names in `allowed_custom_traits`, and renders when
/// every one of those is present. Names the first unknown variable
/// (alphabetically, so the message is stable).
pub fn check(template: &str, allowed_custom_traits: &[&str]) -> Result<(), TemplateError> {
    let env = environment(Escape::None);
    let tmpl = env.template_from_str(template).map_err(syntax)?;
    // `nested` so `traits.plan` comes back whole rather than as `traits`.
    let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    used.sort();
    for name in used {
        let known = STANDARD_VARS.contains(&name.as_str())
            || name
                .strip_prefix("traits.")
                .is_some_and(|t| allowed_custom_traits.contains(&t));
        if !known {
            return Err(TemplateError::UnknownVariable { name });
        }
    }
    // A trial render with every allowed value present catches what static
    // analysis cannot: filters, tests and functions this build does not have.
    let mut sample = Vars::new();
    for v in STANDARD_VARS {
        sample = sample.with(v, "x");
    }
    for t in allowed_custom_traits {
        sample = sample.with_trait(t, "x");
    }
    tmpl.render(sample.to_value())
        .map(drop)
        .map_err(|e| TemplateError::Render {
            message: e.to_string(),
        })
}

/// Renders a checked template for one customer.
pub fn render(template: &str, vars: &Vars, escape: Escape) -> Result<String, TemplateError> {
    let env = environment(escape);
    let tmpl = env.template_from_str(template).map_err(syntax)?;
    tmpl.render(vars.to_value()).map_err(|e| {
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            // minijinja does not name the undefined variable in the error, so
            // find the first used one this customer lacks.
            let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
            used.sort();
            let missing = used.into_iter().find(|n| !vars.has(n));
            if let Some(name) = missing {
                return TemplateError::MissingValue { name };
            }
        }
        TemplateError::Render {
            message: e.to_string(),
        }
    })
}

impl Vars {
    fn has(&self, name: &str) -> bool {
        match name.strip_prefix("traits.") {
            Some(t) => self.traits.contains_key(t),
            None => self.standard.contains_key(name),
        }
    }
}

fn syntax(e: minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ana() -> Vars {
        Vars::new()
            .with("first_name", "Ana")
            .with("cart_url", "https://shop.example/c/1?a=1&b=2")
            .with("cart_total", "$42.00")
            .with_trait("plan", "gold")
    }

    #[test]
    fn renders_standard_and_custom_variables() {
        let out = render(
            "Hi {{ first_name }}, your {{traits.plan}} cart ({{ cart_total }}): {{ cart_url }}",
            &ana(),
            Escape::None,
        )
        .unwrap();
        assert_eq!(
            out,
            "Hi Ana, your gold cart ($42.00): https://shop.example/c/1?a=1&b=2"
        );
    }

    #[test]
    fn email_bodies_are_html_escaped_and_sms_is_not() {
        let vars = Vars::new().with("first_name", "<b>Tom & Jerry</b>");
        let html = render("Hi {{ first_name }}", &vars, Escape::Html).unwrap();
        assert_eq!(html, "Hi &lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;");
        let sms = render("Hi {{ first_name }}", &vars, Escape::None).unwrap();
        assert_eq!(sms, "Hi <b>Tom & Jerry</b>");
    }

    #[test]
    fn check_refuses_unknown_variables_by_name() {
        assert_eq!(
            check("Hi {{ first_name }} {{ traits.plan }}", &["plan"]),
            Ok(())
        );
        assert_eq!(
            check("Hi {{ frist_name }}", &[]),
            Err(TemplateError::UnknownVariable {
                name: "frist_name".into()
            })
        );
        let err = check("{{ traits.plan }}", &["tier"]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownVariable {
                name: "traits.plan".into()
            }
        );
        assert!(err.to_string().contains("{{ traits.plan }}"), "{err}");
        // The whole traits map is not a message.
        assert!(check("{{ traits }}", &["plan"]).is_err());
    }

    #[test]
    fn check_refuses_bad_syntax_and_missing_filters() {
        assert!(matches!(
            check("Hi {{ first_name", &[]),
            Err(TemplateError::Syntax { .. })
        ));
        assert!(matches!(
            check("Hi {{ first_name | upper }}", &[]),
            Err(TemplateError::Render { .. })
        ));
        assert_eq!(
            check("{% if company %}at {{ company }}{% endif %}", &[]),
            Ok(())
        );
    }

    #[test]
    fn a_missing_value_fails_instead_of_printing_a_blank() {
        let vars = Vars::new().with("cart_url", "u");
        assert_eq!(
            render("Hi {{ first_name }}", &vars, Escape::None),
            Err(TemplateError::MissingValue {
                name: "first_name".into()
            })
        );
        assert_eq!(
            render("{{ traits.plan }}", &Vars::new(), Escape::Html),
            Err(TemplateError::MissingValue {
                name: "traits.plan".into()
            })
        );
    }

    #[test]
    fn unknown_names_cannot_be_set_as_standard_variables() {
        let vars = Vars::new().with("password", "hunter2");
        assert!(render("{{ password }}", &vars, Escape::None).is_err());
    }

    proptest! {
        // Whatever text a customer's value holds, an HTML render never lets
        // markup through and a plain render keeps it byte for byte.
        #[test]
        fn values_are_escaped_only_for_html(name in "\\PC{0,40}") {
            let vars = Vars::new().with("first_name", name.clone());
            let plain = render("{{ first_name }}", &vars, Escape::None).unwrap();
            prop_assert_eq!(plain, name.clone());
            let html = render("{{ first_name }}", &vars, Escape::Html).unwrap();
            prop_assert!(!html.contains('<') && !html.contains('>') && !html.contains('"'));
        }

        // Literal text without template syntax renders unchanged.
        #[test]
        fn literal_text_passes_through(text in "[a-zA-Z0-9 .,!?]{0,80}") {
            prop_assert_eq!(check(&text, &[]), Ok(()));
            prop_assert_eq!(render(&text, &Vars::new(), Escape::Html).unwrap(), text);
        }
    }
}
