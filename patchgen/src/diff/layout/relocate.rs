//! The debug sections of a relocatable object as DWARF readers need them:
//! in a `.o`, string offsets, `DW_AT_stmt_list` and the like are 0 in the
//! bytes and their values are in relocations, which are applied here to
//! copies. Only the sections the layout check reads are copied.

use gimli::SectionId;

use super::LayoutError;
use crate::elf::ObjectFile;

/// `SHF_COMPRESSED`: the section holds a compression header and zlib or
/// zstd data (`CONFIG_DEBUG_INFO_COMPRESSED`).
const SHF_COMPRESSED: u64 = 0x800;

/// The sections the check reads. Location and range lists, frames and
/// aranges are never read, so they are neither copied nor relocated.
const NEEDED: [SectionId; 7] = [
    SectionId::DebugInfo,
    SectionId::DebugAbbrev,
    SectionId::DebugStr,
    SectionId::DebugLineStr,
    SectionId::DebugLine,
    SectionId::DebugStrOffsets,
    SectionId::DebugAddr,
];

/// Fails unless `obj` has a `.debug_info` with something in it.
pub(super) fn require_debug_info(obj: &ObjectFile) -> Result<(), LayoutError> {
    match obj.section_by_name(".debug_info") {
        Some(info) if info.size > 0 => Ok(()),
        _ => Err(LayoutError::NoDebugInfo {
            path: obj.path.clone(),
        }),
    }
}

/// Copies of the needed debug sections that carry relocations, with the
/// relocations applied (in a relocatable object their fields hold 0 and the
/// value is in the relocation).
#[derive(Debug, Default)]
pub(super) struct Relocated {
    sections: Vec<(SectionId, Vec<u8>)>,
}

impl Relocated {
    /// Section `id` of `obj`: the relocated copy when there is one, else
    /// the object's bytes; empty for sections the check never reads.
    pub(super) fn section<'a>(&'a self, obj: &'a ObjectFile, id: SectionId) -> &'a [u8] {
        if !NEEDED.contains(&id) {
            return &[];
        }
        self.sections
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.as_slice())
            .or_else(|| {
                obj.section_by_name(id.name())
                    .map(|s| obj.section_data(s.index))
            })
            .unwrap_or(&[])
    }

    /// Relocates the needed sections of `obj`. Fails when `obj` has no
    /// `.debug_info`, or compressed debug sections.
    pub(super) fn new(obj: &ObjectFile) -> Result<Self, LayoutError> {
        let path = || obj.path.clone();
        require_debug_info(obj)?;
        if obj.section_by_name(".debug_types").is_some() {
            return Err(LayoutError::Unsupported {
                path: path(),
                offset: 0,
                what: "type units (.debug_types)",
            });
        }
        let mut sections = Vec::new();
        for id in NEEDED {
            let Some(section) = obj.section_by_name(id.name()) else {
                continue;
            };
            if section.sh_flags & SHF_COMPRESSED != 0 {
                return Err(LayoutError::Compressed {
                    path: path(),
                    section: section.name.clone(),
                });
            }
            let relocs = obj.section_relocs(section.index)?;
            if relocs.is_empty() {
                continue;
            }
            let mut data = obj.section_data(section.index).to_vec();
            for r in relocs {
                let size = usize::from(r.size);
                if size == 0 {
                    continue; // R_X86_64_NONE
                }
                // Section symbols have value 0; a named symbol's value is
                // its offset in its section, which is what DWARF expects of
                // a DW_OP_addr in an unlinked object.
                let value = obj
                    .symbols
                    .get(r.symbol)
                    .map_or(0, |s| s.value)
                    .wrapping_add(u64::from_le_bytes(r.addend.to_le_bytes()));
                let field = usize::try_from(r.offset)
                    .ok()
                    .and_then(|start| data.get_mut(start..start.checked_add(size)?))
                    .filter(|_| size <= 8);
                let Some(field) = field else {
                    return Err(LayoutError::BadRelocation {
                        path: path(),
                        section: section.name.clone(),
                        offset: r.offset,
                    });
                };
                field.copy_from_slice(&value.to_le_bytes()[..size]);
            }
            sections.push((id, data));
        }
        Ok(Self { sections })
    }
}
