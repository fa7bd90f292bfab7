//! The pass over one build's top-level DIEs that everything else starts
//! from: it indexes them by name (and, on the walked side, its functions),
//! skipping every subtree through `DW_AT_sibling`.

use super::dwarf::Want;
use super::index::{Functions, IndexBuilder};
use super::types::Side;
use super::LayoutError;

impl<'a> Side<'_, 'a> {
    /// Indexes the top-level DIEs of every unit; the functions too on the
    /// walked side.
    pub(super) fn scan(&mut self) -> Result<(), LayoutError> {
        let dwarf = self.dwarf;
        let want = if self.walked {
            Want::Index
        } else {
            Want::TypeIndex
        };
        let mut index = IndexBuilder::new(dwarf.info_len());
        let mut functions = self.walked.then(|| Functions::new(dwarf.info_len()));
        for root in dwarf.unit_roots() {
            let mut sub = dwarf.subtree(root)?;
            // The unit DIE, then its children, each skipped past.
            if sub.next(Want::Sibling)?.is_none() {
                continue;
            }
            while sub.next(want)?.is_some() {
                sub.skip_children()?;
                let die = sub.current();
                index.add(die);
                if let Some(functions) = functions.as_mut() {
                    functions.add(die);
                }
            }
        }
        self.index = index.finish();
        if functions.is_some() {
            self.functions = functions;
        }
        Ok(())
    }

    /// The functions of the object, indexed on first use on the side that
    /// did not index them in its scan (asked only about types local to a
    /// function).
    pub(super) fn functions(&mut self) -> Result<&Functions<'a>, LayoutError> {
        if self.functions.is_none() {
            let dwarf = self.dwarf;
            let mut functions = Functions::new(dwarf.info_len());
            for root in dwarf.unit_roots() {
                let mut sub = dwarf.subtree(root)?;
                if sub.next(Want::Sibling)?.is_none() {
                    continue;
                }
                while sub.next(Want::Index)?.is_some() {
                    sub.skip_children()?;
                    functions.add(sub.current());
                }
            }
            self.functions = Some(functions);
        }
        Ok(self.functions.get_or_insert_with(Functions::default))
    }
}
