//! A series' label values and their rendering for the text formats.

#[derive(Debug)]
pub(crate) struct LabelText {
    /// The raw values one after the other, then `name="value",...` with escapes.
    text: Box<str>,
    /// Where each raw value ends in `text`.
    ends: Ends,
    /// Where the rendering starts in `text`: the end of the last value.
    rendered_start: u32,
}

/// Calls the function it is given with each label value, in label order.
pub(crate) type VisitValues<'a> = dyn Fn(&mut dyn FnMut(&str)) + 'a;

/// Value boundaries: inline for the usual few labels.
#[derive(Debug)]
enum Ends {
    Inline { len: u8, ends: [u32; 4] },
    Heap(Box<[u32]>),
}

impl LabelText {
    /// Builds the text of a series: `visit` gives the values in label order (it is called
    /// twice), `consts` are appended to the rendering. `None` if the text would pass 4 GiB.
    pub(crate) fn build(
        names: &[Box<str>],
        consts: &[(Box<str>, Box<str>)],
        visit: &VisitValues<'_>,
        scratch: &mut String,
    ) -> Option<Self> {
        scratch.clear();
        let mut inline = [0u32; 4];
        let mut heap: Vec<u32> = Vec::new();
        let mut count = 0usize;
        let mut fits = true;
        visit(&mut |value| {
            scratch.push_str(value);
            let end = u32::try_from(scratch.len()).unwrap_or_else(|_| {
                fits = false;
                0
            });
            match inline.get_mut(count) {
                Some(slot) => *slot = end,
                None => {
                    if heap.is_empty() {
                        heap.extend_from_slice(&inline);
                    }
                    heap.push(end);
                }
            }
            count += 1;
        });
        let mut first = true;
        let mut index = 0;
        visit(&mut |value| {
            if let Some(name) = names.get(index) {
                push_pair(scratch, &mut first, name, value);
            }
            index += 1;
        });
        for (name, value) in consts {
            push_pair(scratch, &mut first, name, value);
        }
        let rendered_start = match count.checked_sub(1) {
            Some(last) => inline.get(last).or(heap.get(last)).copied().unwrap_or(0),
            None => 0,
        };
        if !fits || u32::try_from(scratch.len()).is_err() {
            return None;
        }
        let ends = match u8::try_from(count) {
            Ok(len) if count <= inline.len() => Ends::Inline { len, ends: inline },
            _ => Ends::Heap(heap.into()),
        };
        Some(Self {
            text: Box::from(scratch.as_str()),
            ends,
            rendered_start,
        })
    }

    #[inline]
    fn ends(&self) -> &[u32] {
        match &self.ends {
            Ends::Inline { len, ends } => &ends[..usize::from(*len)],
            Ends::Heap(ends) => ends,
        }
    }

    /// The text's bytes and where each value ends in them.
    #[inline]
    pub(crate) fn raw(&self) -> (&[u8], &[u32]) {
        (self.text.as_bytes(), self.ends())
    }

    /// The values' bytes, in label order: what lookups compare, without the char-boundary
    /// checks of slicing a `str`.
    #[inline]
    pub(crate) fn value_bytes(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.text.as_bytes();
        let mut start = 0;
        self.ends().iter().map(move |&end| {
            let value = bytes.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            value
        })
    }

    /// The values, in label order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends().iter().map(move |&end| {
            let value = self.text.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            value
        })
    }

    /// `name="value",...` with escapes, constant labels included.
    #[inline]
    pub(crate) fn rendered(&self) -> &str {
        self.text
            .get(self.rendered_start as usize..)
            .unwrap_or_default()
    }
}

fn push_pair(out: &mut String, first: &mut bool, name: &str, value: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push_str(name);
    out.push_str("=\"");
    crate::util::fmt::write_escaped_label_value(out, value);
    out.push('"');
}
